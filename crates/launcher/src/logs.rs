//! Where the processes' output goes. A developer running `make run` wants
//! every process's lines interleaved on one terminal, each prefixed with the
//! process (`[order-1] …`), as `scripts/run-local` did; tests and labs want
//! one file per process (appended across restarts) to read after the fact.

use std::{
    fs::{File, OpenOptions},
    io::Write as _,
    path::PathBuf,
};

use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};

/// Where output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// Interleaved on the launcher's stdout, each line prefixed `[name] `.
    Stdout,
    /// One file per process, `<dir>/<name>.log`, appended (restarts included).
    Dir(PathBuf),
    /// Nowhere.
    Discard,
}

impl LogTarget {
    /// Copies every line of `reader` to this target as process `name`'s,
    /// until the reader ends (the process exited and closed its output).
    pub fn pump<R>(&self, name: &str, reader: R) -> tokio::task::JoinHandle<()>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let target = self.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            let mut sink = Sink::open(&target, &name);
            let mut reader = BufReader::new(reader);
            let mut line = Vec::with_capacity(256);
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if line.last() != Some(&b'\n') {
                            line.push(b'\n');
                        }
                        sink.write(&line);
                    }
                }
            }
        })
    }

    /// Writes one line of the launcher's own as `name` (e.g. `launch`).
    pub fn line(&self, name: &str, text: &str) {
        let mut line = text.as_bytes().to_vec();
        line.push(b'\n');
        Sink::open(self, name).write(&line);
    }
}

enum Sink {
    Stdout(String),
    File(File),
    Nowhere,
}

impl Sink {
    fn open(target: &LogTarget, name: &str) -> Self {
        match target {
            LogTarget::Stdout => Sink::Stdout(format!("[{name}] ")),
            LogTarget::Dir(dir) => {
                let _ = std::fs::create_dir_all(dir);
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join(format!("{name}.log")))
                    .map_or(Sink::Nowhere, Sink::File)
            }
            LogTarget::Discard => Sink::Nowhere,
        }
    }

    fn write(&mut self, line: &[u8]) {
        match self {
            // One locked write per line, so lines of different processes
            // interleave but never mix.
            Sink::Stdout(prefix) => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(prefix.as_bytes()).and_then(|()| out.write_all(line));
                let _ = out.flush();
            }
            Sink::File(file) => {
                let _ = file.write_all(line);
            }
            Sink::Nowhere => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_go_to_one_file_per_process() {
        let dir = std::env::temp_dir().join(format!("launcher-logs-{}", std::process::id()));
        let target = LogTarget::Dir(dir.clone());
        target.pump("order-1", &b"one\ntwo"[..]).await.expect("pump");
        target.pump("order-1", &b"three\n"[..]).await.expect("pump");
        let text = std::fs::read_to_string(dir.join("order-1.log")).expect("log file");
        assert_eq!(text, "one\ntwo\nthree\n");
        let _ = std::fs::remove_dir_all(dir);
    }
}
