//! Bytes that are not what the protocol says: messages that do not decode,
//! random bytes, messages over the size limit.

use crate::common::*;
use crate::helpers::*;
use sweep_proto::v1::{self};
use tonic::{Code, Request};

/// A codec that sends and receives bytes as they are.
#[derive(Clone, Default)]
struct Raw;

impl tonic::codec::Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl tonic::codec::Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(buf, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        buf: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let bytes = bytes::Buf::copy_to_bytes(buf, bytes::Buf::remaining(buf));
        Ok(Some(bytes.to_vec()))
    }
}

/// Sends `bytes` as they are as the request of `path`.
async fn raw_call(
    server: &Server,
    path: &'static str,
    bytes: Vec<u8>,
) -> Result<Vec<u8>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    grpc.unary(Request::new(bytes), path, Raw)
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_does_not_decode_is_a_bad_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&dir)).await;
    // A length-delimited field whose length runs past the message's end.
    let garbage = vec![0x0a, 0xff, 0x01, 0x00];
    for path in ["/sweep.v1.Sweeps/Submit", "/sweep.v1.Coordinator/Register"] {
        let err = raw_call(&server, path, garbage.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
        assert!(
            err.message().contains("does not decode"),
            "{}",
            err.message()
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_get_a_clear_code_never_internal() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&dir)).await;
    let paths = [
        "/sweep.v1.Sweeps/Submit",
        "/sweep.v1.Sweeps/Get",
        "/sweep.v1.Sweeps/ListTasks",
        "/sweep.v1.Coordinator/Register",
        "/sweep.v1.Coordinator/Heartbeat",
        "/sweep.v1.Coordinator/Lease",
    ];
    // A fixed xorshift stream: the same 600 inputs on every run.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..600 {
        let length = (next() % 64) as usize;
        let bytes: Vec<u8> = (0..length).map(|_| next() as u8).collect();
        let path = paths[round % paths.len()];
        if let Err(status) = raw_call(&server, path, bytes.clone()).await {
            assert!(
                !matches!(status.code(), Code::Internal | Code::Unknown),
                "{bytes:?}: {:?} {}",
                status.code(),
                status.message()
            );
        }
    }
    server.stop().await;
}

/// A message over the limit from a client that does not check (the typed
/// clients refuse before sending) gets a status that names its size, which
/// the typed clients turn into one line, and the coordinator goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_limit_is_answered_with_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&dir)).await;
    let spec = format!("# {}\n{SPEC}", "x".repeat(10 << 20));
    let request = prost::Message::encode_to_vec(&v1::SubmitRequest {
        spec_toml: spec,
        ..Default::default()
    });
    let size = request.len();
    let err = raw_call(&server, "/sweep.v1.Sweeps/Submit", request)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{}", err.message());
    assert!(
        err.message()
            .contains(&format!("message length too large: found {size} bytes")),
        "{}",
        err.message()
    );
    let (_, mut sweeps) = server.clients().await;
    let listed = sweeps
        .list(v1::ListSweepsRequest { limit: 0 })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.sweeps.is_empty());
    server.stop().await;
}
