//! An HTTP/2 conformance run in the manner of h2spec (not packaged for
//! Debian, PyPI or npm): `h2_conformance.py` opens a connection per case,
//! sends frames built byte by byte and checks the server's answer against
//! RFC 9113 and RFC 7541. Every case must pass, except the deviations listed
//! in [`KNOWN_DEVIATIONS`], which must still be refused (the connection or
//! the stream ended, never served), only with another error code; and a
//! client is served normally after the run.

use std::net::SocketAddr;
use std::time::Duration;

use http_core::{Request, Response, Server, Service};
use serde_json::Value;
use test_support::{python_script, runtime};

struct Hello;

impl Service for Hello {
    async fn call(&self, mut req: Request<'_>) -> Response {
        // Read the body (a trailers case sends one), then answer.
        let _ = req.body.to_bytes(1 << 20).await;
        Response::text(200, "hello\n")
    }
}

/// Cases answered with another code than the RFC names, which must still be
/// refused: none since the server's own HTTP/2 and HPACK implementation
/// replaced the `h2` crate's (which reported the three HPACK errors as
/// `PROTOCOL_ERROR`, not `COMPRESSION_ERROR`). A deviation found later goes
/// here with the code the RFC asks for.
const KNOWN_DEVIATIONS: &[(&str, &str)] = &[];

/// Runs the script against `addr`; `None` (skipped, reason printed) without
/// python3 and its h2 modules (`.ci/run` installs them).
fn conformance(addr: SocketAddr) -> Option<Vec<Value>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/h2_conformance.py");
    let (ip, port) = (addr.ip().to_string(), addr.port().to_string());
    let out = python_script(
        script,
        &["hpack", "hyperframe"],
        &[&ip, &port],
        Duration::from_secs(240),
    )?;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    Some(v.as_array().expect("a list").clone())
}

#[test]
fn every_case_passes_but_the_known_deviations_which_are_still_refused() {
    let rt = runtime();
    let handle = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Server::new(Hello).h2c(true).spawn(listener).unwrap()
    });
    let addr = handle.local_addr();
    let Some(results) = conformance(addr) else {
        return;
    };
    assert!(results.len() >= 50, "{results:?}");
    let mut failed = Vec::new();
    for r in &results {
        let case = r["case"].as_str().unwrap();
        let got = r["got"].as_str().unwrap_or("?");
        match KNOWN_DEVIATIONS.iter().find(|(c, _)| *c == case) {
            None if r["pass"] == true => {}
            None => failed.push(format!(
                "{case} ({}): want {}, got {got}",
                r["section"], r["want"]
            )),
            Some((_, rfc)) => {
                // Still refused: the connection (or the stream) ended, with an error.
                let refused = got.starts_with("goaway:") && got != "goaway:0"
                    || got.starts_with("rst:")
                    || got == "closed";
                assert!(
                    refused,
                    "{case}: the RFC asks for {rfc}; got {got}, not even a refusal"
                );
                assert!(
                    r["pass"] == false,
                    "{case} passes now: take it off KNOWN_DEVIATIONS"
                );
            }
        }
    }
    assert!(failed.is_empty(), "cases that fail:\n{}", failed.join("\n"));
    // The server still serves after every one of those connections.
    let reply = test_support::exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    rt.block_on(handle.shutdown());
}
