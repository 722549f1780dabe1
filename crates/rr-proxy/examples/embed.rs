//! Embedding rr-proxy in a program that also does its own work.
//!
//! The program starts two small backends of its own (on http-core), puts the
//! proxy in front of them with an admin endpoint, and meanwhile does its own job:
//! it sends a few requests through the proxy, drains a backend at run time, and
//! reports the counters it reads through the handle. Then it shuts down cleanly.
//!
//! ```text
//! cargo run -p rr-proxy --example embed
//! ```

use std::time::Duration;

use http_core::{Request, Response, Server, Service, ShutdownSignal};
use rr_proxy::{HealthCheck, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The program's own backend: says who it is.
struct Named(&'static str);

impl Service for Named {
    async fn call(&self, req: Request<'_>) -> Response {
        Response::text(200, format!("{} answered {}\n", self.0, req.head.target()))
    }
}

/// One request through the proxy, on a fresh connection.
async fn fetch(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or(out))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (trigger, signal) = ShutdownSignal::new();

    // The program's own services, serving as backends.
    let mut backends = Vec::new();
    for name in ["alpha", "beta"] {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        backends.push(listener.local_addr()?);
        let mut s = signal.clone();
        tokio::spawn(Server::new(Named(name)).serve(listener, async move { s.triggered().await }));
    }

    // The proxy in front of them, with health checks and an admin endpoint.
    let proxy = Proxy::builder()
        .backends(backends.iter().map(|&a| (a, 1)))
        .health_check(HealthCheck {
            interval: Duration::from_millis(500),
            ..HealthCheck::default()
        })
        .build()?;
    let handle = proxy.handle();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let proxy_addr = listener.local_addr()?;
    let admin = TcpListener::bind("127.0.0.1:0").await?;
    let admin_addr = admin.local_addr()?;
    let mut s = signal.clone();
    let served = tokio::spawn(proxy.serve(listener, async move { s.triggered().await }));
    let mut s = signal.clone();
    tokio::spawn(rr_proxy::serve_admin(handle.clone(), admin, async move {
        s.triggered().await
    }));
    println!("proxy on http://{proxy_addr}, admin on http://{admin_addr}/stats");

    // The program's own work: use the proxy, change it, watch it.
    for i in 0..4 {
        print!("{}", fetch(proxy_addr, &format!("/job/{i}")).await?);
    }
    handle.drain(backends[0])?;
    println!("drained {}", backends[0]);
    for i in 4..6 {
        print!("{}", fetch(proxy_addr, &format!("/job/{i}")).await?);
    }
    println!("{}", fetch(admin_addr, "/stats").await?.trim_end());
    for b in handle.stats().backends {
        println!("{}: {} requests, state {}", b.addr, b.requests, b.state.as_str());
    }

    trigger.trigger();
    served.await??;
    Ok(())
}
