//! The identity of a build: the crate version, the git commit it was built
//! from, the release it belongs to, and the build profile.
//!
//! Why it exists: a release is replaced, never patched, so every running
//! process must be able to say which release it is. Each binary prints its
//! identity for `--version`, logs it as its first line, exports it as the
//! `build_info` gauge on `/metrics` and as resource attributes of its spans.
//!
//! How it gets in, and why this way. The build stamps two variables, read at
//! compile time by [`build_info!`](crate::build_info!) in the *binary's own*
//! `main.rs`:
//! - `TWINSHOP_COMMIT`: the commit (the build recipes pass
//!   `git rev-parse HEAD`; unset, the binary says `unknown`);
//! - `TWINSHOP_RELEASE`: the release identity, e.g. `r2` (default: the
//!   commit).
//!
//! Cargo records both in the dep-info of the unit that reads them, so a new
//! commit or release recompiles each binary's `main.rs` and relinks it, and
//! nothing else: no library, no dependency. (A build script is the usual
//! tool, but every crate depending on its crate would then recompile with
//! each new commit or release.) Both must be usable as an image tag and a
//! metric label: 1 to 128 of `A-Z a-z 0-9 _ . -`, not starting with `.` or
//! `-`; anything else fails the build.
//!
//! Depends on std only: the launcher, which does not link the platform,
//! includes this file by path.

use std::{fmt, sync::OnceLock};

/// What a build says about itself. Made by [`build_info!`](crate::build_info!).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildInfo {
    /// The crate version (`CARGO_PKG_VERSION` of the binary's package).
    pub version: &'static str,
    /// The git commit, or [`UNKNOWN`] when the build did not say.
    pub commit: &'static str,
    /// The release identity; the commit unless `TWINSHOP_RELEASE` was set.
    pub release: &'static str,
    /// `release` or `debug` (whether debug assertions are compiled in).
    pub profile: &'static str,
}

/// The commit of a build that was not given `TWINSHOP_COMMIT`.
pub const UNKNOWN: &str = "unknown";

/// The identity of the binary being compiled: expands, in the crate that
/// calls it, to a constant [`BuildInfo`] read from `CARGO_PKG_VERSION`,
/// `TWINSHOP_COMMIT` and `TWINSHOP_RELEASE`. Call it from `main.rs` (see
/// the module docs for why there).
#[macro_export]
macro_rules! build_info {
    () => {{
        const BUILD: $crate::build_info::BuildInfo = $crate::build_info::BuildInfo::new(
            env!("CARGO_PKG_VERSION"),
            option_env!("TWINSHOP_COMMIT"),
            option_env!("TWINSHOP_RELEASE"),
            cfg!(debug_assertions),
        );
        BUILD
    }};
}

static CURRENT: OnceLock<BuildInfo> = OnceLock::new();

impl BuildInfo {
    /// The identity from the raw build variables; an empty variable counts
    /// as unset. Panics (at compile time, in [`build_info!`](crate::build_info!))
    /// on a value that is no valid image tag.
    pub const fn new(
        version: &'static str,
        commit: Option<&'static str>,
        release: Option<&'static str>,
        debug_assertions: bool,
    ) -> Self {
        let commit = match commit {
            Some(commit) if !commit.is_empty() => commit,
            _ => UNKNOWN,
        };
        let release = match release {
            Some(release) if !release.is_empty() => release,
            _ => commit,
        };
        assert!(is_tag(commit), "TWINSHOP_COMMIT must be 1-128 of A-Z a-z 0-9 _ . - (not starting with . or -)");
        assert!(is_tag(release), "TWINSHOP_RELEASE must be 1-128 of A-Z a-z 0-9 _ . - (not starting with . or -)");
        let profile = if debug_assertions { "debug" } else { "release" };
        Self { version, commit, release, profile }
    }

    /// Makes this the process's identity, for the parts that start before
    /// any value can be handed to them (telemetry). The first call wins.
    pub fn install(self) {
        let _ = CURRENT.set(self);
    }

    /// The identity installed by [`BuildInfo::install`], if any (none in
    /// tests).
    pub fn current() -> Option<Self> {
        CURRENT.get().copied()
    }
}

/// `0.1.0 (commit 3f2a…, release r2, profile release)`: what `--version`
/// prints after the binary's name.
impl fmt::Display for BuildInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (commit {}, release {}, profile {})", self.version, self.commit, self.release, self.profile)
    }
}

/// A valid image tag (the OCI distribution spec's `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`),
/// which is also a safe metric label value.
const fn is_tag(value: &str) -> bool {
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > 128 || bytes[0] == b'.' || bytes[0] == b'-' {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-') {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_defaults_to_the_commit_and_an_unset_commit_is_unknown() {
        let given = BuildInfo::new("0.1.0", Some("3f2a9c"), Some("r2"), false);
        assert_eq!((given.commit, given.release, given.profile), ("3f2a9c", "r2", "release"));
        let default = BuildInfo::new("0.1.0", Some("3f2a9c"), None, true);
        assert_eq!((default.release, default.profile), ("3f2a9c", "debug"));
        let empty = BuildInfo::new("0.1.0", Some(""), Some(""), false);
        assert_eq!((empty.commit, empty.release), (UNKNOWN, UNKNOWN));
        assert_eq!(given.to_string(), "0.1.0 (commit 3f2a9c, release r2, profile release)");
    }

    #[test]
    fn only_image_tags_are_identities() {
        for ok in ["r2", "3f2a9c0d", "v1.2.3-rc_1", "a".repeat(128).as_str()] {
            assert!(is_tag(ok), "{ok}");
        }
        for bad in ["", "-r2", ".r2", "r 2", "r2/x", "r2:x", "é", "a".repeat(129).as_str()] {
            assert!(!is_tag(bad), "{bad}");
        }
    }

    #[test]
    #[should_panic(expected = "TWINSHOP_RELEASE")]
    fn a_release_that_is_no_image_tag_is_refused() {
        let _ = BuildInfo::new("0.1.0", None, Some("release 2"), false);
    }
}
