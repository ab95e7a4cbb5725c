//! gRPC server reflection, as a tool like `grpcurl` uses it: the services a
//! server lists, and how it describes one of them (its methods and their
//! message types), in either version of the protocol.
//!
//! Why it exists: docs/design.md §4 promises reflection on the internal
//! port "so `grpcurl` works", and the conformance suite's internal mode
//! checks that a port keeps that promise. Both versions are asked the same
//! two questions: `grpc.reflection.v1` is the standard, `v1alpha` is what
//! older tools (grpcurl before 1.8.8, evans, Postman) still speak. The
//! protocol's stubs come ready-made from tonic-reflection; descriptors are
//! decoded with prost-types.

use prost::Message as _;
use prost_types::FileDescriptorProto;
use tonic::{Status, codegen::tokio_stream, transport::Channel};

/// Which version of the reflection protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReflectionVersion {
    /// `grpc.reflection.v1.ServerReflection`.
    V1,
    /// `grpc.reflection.v1alpha.ServerReflection`.
    V1Alpha,
}

impl ReflectionVersion {
    /// The service's full name.
    pub fn service(self) -> &'static str {
        match self {
            Self::V1 => "grpc.reflection.v1.ServerReflection",
            Self::V1Alpha => "grpc.reflection.v1alpha.ServerReflection",
        }
    }
}

/// One method, as the server describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReflectedMethod {
    /// E.g. `Charge`.
    pub name: String,
    /// The request message's full name, e.g. `.twinshop.payment.v1.ChargeRequest`.
    pub input_type: String,
    /// The response message's full name.
    pub output_type: String,
}

/// What a server said about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reflection {
    /// Every service it lists, e.g. `grpc.health.v1.Health`.
    pub services: Vec<String>,
    /// The methods of the service asked about, `None` when no file the
    /// server sent defines it.
    pub methods: Option<Vec<ReflectedMethod>>,
    /// The file that defines it, e.g. `twinshop/payment/v1/payments.proto`.
    pub file: Option<String>,
}

/// The methods of `service` (`package.Service`) among `files`, and the file.
fn find(files: &[FileDescriptorProto], service: &str) -> (Option<Vec<ReflectedMethod>>, Option<String>) {
    for file in files {
        let package = file.package();
        for s in &file.service {
            let full = if package.is_empty() { s.name().to_owned() } else { format!("{package}.{}", s.name()) };
            if full == service {
                let methods = s
                    .method
                    .iter()
                    .map(|m| ReflectedMethod {
                        name: m.name().to_owned(),
                        input_type: m.input_type().to_owned(),
                        output_type: m.output_type().to_owned(),
                    })
                    .collect();
                return (Some(methods), Some(file.name().to_owned()));
            }
        }
    }
    (None, None)
}

/// The two versions' stubs and messages have the same shape under
/// different paths; one body serves both.
macro_rules! ask {
    ($pb:ident, $channel:expr, $service:expr) => {{
        use tonic_reflection::pb::$pb::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let ask = |message| ServerReflectionRequest { host: String::new(), message_request: Some(message) };
        let requests = vec![
            ask(MessageRequest::ListServices(String::new())),
            ask(MessageRequest::FileContainingSymbol($service.to_owned())),
        ];
        let mut answers = ServerReflectionClient::new($channel)
            .server_reflection_info(tokio_stream::iter(requests))
            .await?
            .into_inner();
        let mut services = Vec::new();
        let mut files = Vec::new();
        while let Some(answer) = answers.message().await? {
            match answer.message_response {
                Some(MessageResponse::ListServicesResponse(list)) => {
                    services.extend(list.service.into_iter().map(|s| s.name));
                }
                Some(MessageResponse::FileDescriptorResponse(found)) => {
                    for bytes in found.file_descriptor_proto {
                        let file = FileDescriptorProto::decode(bytes.as_slice())
                            .map_err(|e| Status::internal(format!("a file descriptor that does not decode: {e}")))?;
                        files.push(file);
                    }
                }
                // The symbol is unknown: the service is not described.
                Some(MessageResponse::ErrorResponse(_)) => {}
                other => return Err(Status::internal(format!("an answer to no question asked: {other:?}"))),
            }
        }
        (services, files)
    }};
}

/// Lists the services and describes `service` over `channel`, in `version`.
pub(crate) async fn reflect(channel: Channel, version: ReflectionVersion, service: &str) -> Result<Reflection, Status> {
    let (services, files) = match version {
        ReflectionVersion::V1 => ask!(v1, channel, service),
        ReflectionVersion::V1Alpha => ask!(v1alpha, channel, service),
    };
    let (methods, file) = find(&files, service);
    Ok(Reflection { services, methods, file })
}
