//! TLS from end to end: a coordinator serving a certificate made for the
//! test, a worker and the `sweep` command that trust it through `--ca`, and
//! clear refusals for the ones that do not.

use sweep_coordinator::TlsIdentity;
use sweep_proto::SweepState;
use sweep_proto::client::{Credentials, SweepsClient};
use sweep_tests::{
    Coordinator, assert_fails_with, finished, stderr, stdout, sweep, terminate, worker,
};

const SPEC: &str = r#"
name = "tls"
experiment = "classify"
dataset = "mnist-sample"
model = { kind = "mlp", hidden = [16] }
train = { lr = 1e-3, epochs = 1, batch_size = 64 }
classify = { train_subset = 500, test_subset = 100 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_and_the_cli_speak_tls_with_the_ca_they_are_given() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = certified.cert.pem();
    let identity = TlsIdentity {
        cert: cert.clone().into_bytes(),
        key: certified.key_pair.serialize_pem().into_bytes(),
    };
    let mut coordinator =
        Coordinator::start(move |config| config.tls = Some(identity.clone())).await;
    let https = coordinator
        .url
        .replace("http://127.0.0.1", "https://localhost");
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &cert).unwrap();
    let spec = dir.path().join("tls.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let ca = ca.to_str().unwrap();

    let submitted = sweep(&[
        "submit",
        spec.to_str().unwrap(),
        "--endpoint",
        &https,
        "--ca",
        ca,
    ]);
    assert!(submitted.status.success(), "{}", stderr(&submitted));
    assert_eq!(stdout(&submitted).trim(), "1");
    let mut process = worker(&https, 1, &["--ca", ca]);
    let credentials = Credentials {
        token: None,
        ca: Some(cert.into_bytes()),
    };
    let client = SweepsClient::connect(&https, &credentials).await.unwrap();
    let sweep_id = sweep_proto::SweepId(1);
    let done = finished(&client, sweep_id).await;
    assert_eq!(done.state, SweepState::Succeeded, "{done:?}");
    assert!(terminate(&mut process).success());

    // Without the CA the certificate is not trusted; plain HTTP/2 does not
    // reach a TLS server either.
    let untrusted = sweep(&["status", "--endpoint", &https]);
    assert_fails_with(
        &untrusted,
        &format!("cannot reach the coordinator at {https}"),
    );
    let plain = coordinator.url.replace("127.0.0.1", "localhost");
    let cleartext = sweep(&["status", "--endpoint", &plain, "--ca", ca]);
    assert_fails_with(&cleartext, "cannot reach the coordinator");
    coordinator.stop().await;
}
