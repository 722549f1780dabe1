//! Serve a directory from your own tokio program.
//!
//! ```text
//! cargo run -p static-server --example serve -- [ROOT] [ADDR]
//! ```
//!
//! ROOT defaults to `static`, ADDR to `127.0.0.1:8080` (use port 0 for any free
//! port). Ctrl-C stops accepting, lets requests in flight finish, and exits.
//!
//! To copy this into your own crate, depend on `static-server` and on `tokio`
//! with the `rt-multi-thread`, `macros`, `net` and `signal` features.

use std::error::Error;
use std::time::Duration;

use static_server::{StaticFiles, SymlinkPolicy};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let root = args.next().unwrap_or_else(|| "static".to_owned());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".to_owned());

    // Every setting is shown with its default, except the two headers at the end.
    let files = StaticFiles::builder(&root)
        .index_files(["index.html"])
        .listing(false)
        .symlinks(SymlinkPolicy::WithinRoot)
        .dotfiles(false)
        .precompressed(true)
        .cache(1 << 20, 64 << 20) // keep files up to 1 MiB in memory, 64 MiB in all
        .revalidate_after(Duration::from_secs(1))
        .header("X-Frame-Options", "SAMEORIGIN")
        .server_id("example")
        .build()?; // fails if the root is missing or a header is invalid

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "serving {} on http://{}",
        files.root().display(),
        listener.local_addr()?
    );

    // `serve` runs until the shutdown future resolves. To run the server in the
    // background instead, use `files.spawn(listener)?`, which returns a handle
    // with `local_addr()` and `shutdown().await`.
    files
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
