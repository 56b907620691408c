//! The server's browser side: the web page beside the gRPC services on the same port ([`page`], which calls the
//! model with gRPC-Web), and what keeps a browser's other requests, a cross-site form above all, off the gRPC
//! services ([`grpc_only`]).

pub mod grpc_only;
pub mod page;
