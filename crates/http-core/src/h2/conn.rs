//! The HTTP/2 connection loop: the h2 crate's server connection, driven on
//! the connection's task together with the streams' service calls.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use ::h2::server::SendResponse;
use ::h2::{Reason, RecvStream};
use bytes::{Bytes, BytesMut};
use futures_util::stream::{FuturesUnordered, StreamExt};

use super::body::H2Body;
use super::io::{H2Io, WriteStall};
use super::request::{build_head, Refusal};
use super::response::{send_response, SendFail};
use super::H2Limits;
use crate::net::io::Io;
use crate::server::access_log::{self, AccessRecord};
use crate::server::body::RequestBody;
use crate::server::service::{Request, Response, Service};
use crate::server::shutdown::ShutdownSignal;
use crate::{Error, Limits, RequestHead};

/// The status the access line gives a stream the client reset before its
/// answer was sent (nginx's "client closed request").
const CLIENT_CLOSED: u16 = 499;

/// What one connection's streams share.
struct Ctx<S> {
    service: Arc<S>,
    limits: Arc<Limits>,
    peer: Option<SocketAddr>,
    /// The peer as the access log shows it, formatted once per connection.
    peer_text: Box<str>,
    /// The transport is TLS.
    tls: bool,
    /// Header lines (`Name: value\r\n`) added to every response: HSTS over TLS.
    extra: Bytes,
}

/// What `accept` gives: the next stream, the connection's error, or its end.
type Incoming = Option<Result<(http::Request<RecvStream>, SendResponse<Bytes>), ::h2::Error>>;

// A value that lives for one turn of the loop: its size is not kept anywhere.
#[allow(clippy::large_enum_variant)]
enum Event {
    Accepted(Incoming),
    /// This many streams finished.
    StreamsDone(usize),
    Timer,
    Signal,
}

/// Serves HTTP/2 on one connection whose peer is known to speak it (ALPN
/// said `h2`, or the client sent the preface on a plain connection), until
/// the client closes it, it idles (no open stream) past
/// [`Limits::keep_alive_timeout`], a protocol error ends it, or `shutdown`
/// fires: then it sends `GOAWAY`, lets the streams in flight finish and closes.
///
/// Each request reaches `service` as a [`Request`] whose head is what the
/// strict HTTP/1.1 parser makes of the request's HTTP/1.1 form (`:authority`
/// as `Host`, cookies joined, `content-length` checked), with
/// [`Version::Http2`](crate::Version::Http2); a body without
/// `content-length` is [`BodyKind::Chunked`](crate::BodyKind::Chunked). A
/// request RFC 9113 calls malformed is reset with `PROTOCOL_ERROR` and never
/// reaches the service; one the HTTP/1.1 rules refuse gets their status (400,
/// 413, 414, 431), as over HTTP/1.1. Each stream's answer is logged and
/// passed to [`Service::on_response`] as over HTTP/1.1, with the protocol
/// `HTTP/2.0`; a stream the client resets cancels its service call and is
/// logged as 499.
///
/// The streams' service calls run on the connection's task (at most
/// [`H2Limits::max_concurrent_streams`] at once). `Expect: 100-continue` is
/// answered with `100` at once: over HTTP/2 the flow-control window, not the
/// interim answer, bounds what the client sends before the service reads.
///
/// ```
/// use std::sync::Arc;
/// use http_core::{serve_h2_connection, H2Limits, Limits, Request, Response, Service, ShutdownSignal};
///
/// struct Hello;
/// impl Service for Hello {
///     async fn call(&self, req: Request<'_>) -> Response {
///         Response::text(200, format!("hello over {}\n", req.head.version().as_str()))
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let (client, server) = tokio::io::duplex(64 * 1024);
/// tokio::spawn(serve_h2_connection(
///     server,
///     None,
///     Arc::new(Hello),
///     Arc::new(Limits::default()),
///     H2Limits::default(),
///     ShutdownSignal::never(),
/// ));
/// // Any HTTP/2 client works; here the h2 crate's own.
/// let (mut send, conn) = h2::client::handshake(client).await.unwrap();
/// tokio::spawn(conn);
/// let req = http::Request::get("http://example.test/").body(()).unwrap();
/// let (resp, _) = send.send_request(req, true).unwrap();
/// let resp = resp.await.unwrap();
/// assert_eq!(resp.status(), 200);
/// let mut body = resp.into_body();
/// let data = body.data().await.unwrap().unwrap();
/// assert_eq!(&data[..], b"hello over HTTP/2.0\n");
/// # });
/// ```
pub async fn serve_h2_connection<T: Io, S: Service>(
    io: T,
    peer: Option<SocketAddr>,
    service: Arc<S>,
    limits: Arc<Limits>,
    h2: H2Limits,
    shutdown: ShutdownSignal,
) {
    serve(
        io,
        Bytes::new(),
        peer,
        service,
        limits,
        h2,
        Bytes::new(),
        shutdown,
    )
    .await
}

/// [`serve_h2_connection`] on a connection of which `read` (the preface, or
/// part of it) has been read already, adding `extra` header lines to every
/// response.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn serve<T: Io, S: Service>(
    io: T,
    read: Bytes,
    peer: Option<SocketAddr>,
    service: Arc<S>,
    limits: Arc<Limits>,
    h2: H2Limits,
    extra: Bytes,
    shutdown: ShutdownSignal,
) {
    let tls = io.is_tls();
    let stall = WriteStall::new();
    let io = H2Io::new(io, read, stall.clone());
    let mut builder = ::h2::server::Builder::new();
    builder
        .max_concurrent_streams(h2.max_concurrent_streams)
        .initial_window_size(h2.initial_stream_window)
        .initial_connection_window_size(h2.initial_connection_window)
        .max_frame_size(h2.max_frame_size)
        .max_header_list_size(u32::try_from(limits.max_head_len).unwrap_or(u32::MAX))
        .max_send_buffer_size(h2.max_send_buffer)
        .max_pending_accept_reset_streams(h2.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(Some(h2.max_local_error_reset_streams));
    let handshake = tokio::time::timeout(limits.header_timeout, builder.handshake::<_, Bytes>(io));
    let mut conn = match handshake.await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::debug!(peer = ?peer, error = %e, "HTTP/2 handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(peer = ?peer, "HTTP/2 handshake timed out");
            return;
        }
    };
    let peer_text = match peer {
        Some(p) if tracing::enabled!(target: "access", tracing::Level::INFO) => p.to_string().into(),
        _ => "-".into(),
    };
    let ctx = Ctx {
        service,
        limits,
        peer,
        peer_text,
        tls,
        extra,
    };
    let keep_alive = ctx.limits.keep_alive_timeout;
    let write_timeout = ctx.limits.write_timeout;
    let mut streams = FuturesUnordered::new();
    // A stream's future in a box of its own, for the next stream answered at
    // once (see `Event::Accepted`): its memory is used again.
    let mut spare = None;
    // Streams among `streams` (not answered at once) still running.
    let mut running = 0usize;
    // Streams finished since the connection was last polled.
    let mut finished = 0usize;
    // Of which answered at once, when their request was accepted.
    let mut inline = false;
    // Streams accepted so far, against those the peer opened.
    let mut accepted = 0u64;
    let mut scratch = BytesMut::new();
    let mut last_active = Instant::now();
    // When GOAWAY was sent: from then on the connection only finishes.
    let mut closing: Option<Instant> = None;
    let timer = tokio::time::sleep(keep_alive);
    tokio::pin!(timer);
    let signalled = shutdown.clone().next_change();
    tokio::pin!(signalled);
    if shutdown.is_triggered() {
        // Shutdown began while the connection was being set up.
        conn.graceful_shutdown();
        closing = Some(Instant::now());
        timer.as_mut().reset((Instant::now() + write_timeout).into());
    }
    loop {
        let event = tokio::select! {
            biased;
            a = poll_fn(|cx| {
                // Each poll of the connection is a turn (see `H2Io`): the
                // answers finished since the last one are gathered into one
                // write when there are several, or when one was answered at
                // once and more requests came with it (they are accepted in
                // the next turns, their answers gathered with it); a turn
                // with gathering off sends them.
                let more = stall.opened() > accepted;
                let mut gather = std::mem::take(&mut finished) > 1 || (std::mem::take(&mut inline) && more);
                for _ in 0..4 {
                    // A frame error the transport's check found: the h2
                    // crate sends the GOAWAY with the RFC's code and closes.
                    match stall.take_violation() {
                        0 => {}
                        code => conn.abrupt_shutdown(::h2::Reason::from(code)),
                    }
                    stall.next_turn(gather);
                    let p = conn.poll_accept(cx);
                    // A request: the flush put off waits for the next turn,
                    // which comes as soon as the request is taken up.
                    if !stall.take_deferred() || p.is_ready() {
                        if p.is_pending() {
                            // No request waits: the streams opened and not
                            // accepted were refused or reset by the h2 crate
                            // (or their header block is not all in yet).
                            accepted = stall.opened();
                            if running == 0 {
                                // Idle for now: an idle connection holds no
                                // stream's box.
                                spare = None;
                            }
                        }
                        return p;
                    }
                    gather = false;
                }
                // Still more to write: another turn soon.
                cx.waker().wake_by_ref();
                Poll::Pending
            }) => Event::Accepted(a),
            n = poll_fn(|cx| finish_ready(&mut streams, cx)), if !streams.is_empty() => Event::StreamsDone(n),
            () = &mut timer => Event::Timer,
            () = &mut signalled, if closing.is_none() => Event::Signal,
        };
        match event {
            Event::Accepted(Some(Ok((req, respond)))) => {
                let started = Instant::now();
                last_active = started;
                accepted += 1;
                let (parts, recv) = req.into_parts();
                let head = build_head(&parts, recv.is_end_stream(), &ctx.limits, &mut scratch);
                let fut = stream(&ctx, head, recv, respond, started);
                // Polled once at once: an answer the service has ready (a
                // cached file) is queued now, without a task of its own;
                // one that has to wait goes on among the other streams.
                let mut slot = match spare.take() {
                    Some(mut slot) => {
                        Pin::set(&mut slot, Some(fut));
                        slot
                    }
                    None => Box::pin(Some(fut)),
                };
                match poll_fn(|cx| Poll::Ready(poll_slot(&mut slot, cx))).await {
                    Poll::Ready(()) => {
                        spare = Some(slot);
                        finished += 1;
                        inline = true;
                    }
                    Poll::Pending => {
                        streams.push(Slot(slot));
                        running += 1;
                    }
                }
            }
            Event::Accepted(Some(Err(e))) => {
                // A protocol error: the h2 crate has sent its GOAWAY.
                tracing::debug!(peer = ?ctx.peer, error = %e, "HTTP/2 connection error");
                break;
            }
            Event::Accepted(None) => break,
            Event::StreamsDone(n) => {
                finished += n;
                running -= n;
                last_active = Instant::now();
            }
            Event::Timer => {
                let now = Instant::now();
                let stalled = stall.blocked_for();
                if stalled.is_some_and(|d| d >= write_timeout) {
                    // The peer stopped reading: nothing more can be sent to
                    // it, not even a GOAWAY.
                    tracing::debug!(peer = ?ctx.peer, "HTTP/2 peer stopped reading; closing");
                    return;
                }
                if streams.is_empty() && closing.is_some_and(|t| now >= t + write_timeout) {
                    // GOAWAY went out a write timeout ago and nothing is left
                    // to finish: the client did not close (nor answer the
                    // PING that ends a graceful close).
                    tracing::debug!(peer = ?ctx.peer, "HTTP/2 client did not close after GOAWAY");
                    return;
                }
                let idle_until = last_active + keep_alive;
                if streams.is_empty() && now >= idle_until && closing.is_none() {
                    conn.graceful_shutdown();
                    closing = Some(now);
                }
                let next = match stalled {
                    Some(d) => now + (write_timeout - d),
                    None if streams.is_empty() && closing.is_none() => idle_until,
                    None => now + write_timeout,
                };
                timer.as_mut().reset(next.into());
            }
            Event::Signal => {
                let reaped = shutdown
                    .reap_idle_before()
                    .is_some_and(|before| streams.is_empty() && last_active <= before);
                if shutdown.is_triggered() || reaped {
                    conn.graceful_shutdown();
                    let now = Instant::now();
                    closing = Some(now);
                    let at = timer.deadline().min((now + write_timeout).into());
                    timer.as_mut().reset(at);
                } else {
                    signalled.set(shutdown.clone().next_change());
                }
            }
        }
    }
    // The connection is over: streams still running find theirs gone (their
    // service calls are cancelled, their sends fail).
    drop(conn);
    while streams.next().await.is_some() {}
}

/// A stream's future in a box that outlives it: emptied once it is done.
type BoxedSlot<F> = Pin<Box<Option<F>>>;

/// Polls the future in `slot`; once done, the slot is emptied (so its box
/// can hold the next one).
fn poll_slot<F: Future<Output = ()>>(slot: &mut BoxedSlot<F>, cx: &mut Context<'_>) -> Poll<()> {
    let Some(fut) = slot.as_mut().as_pin_mut() else {
        return Poll::Ready(());
    };
    std::task::ready!(fut.poll(cx));
    slot.set(None);
    Poll::Ready(())
}

/// A stream that could not be answered at once, among the others.
struct Slot<F>(BoxedSlot<F>);

impl<F: Future<Output = ()>> Future for Slot<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        poll_slot(&mut self.get_mut().0, cx)
    }
}

/// Runs the streams until none can go on; `Ready` with how many finished if
/// any did: every answer ready in this turn is queued before the connection
/// is polled again and writes them together, instead of one per poll.
fn finish_ready<F: Future<Output = ()>>(
    streams: &mut FuturesUnordered<F>,
    cx: &mut Context<'_>,
) -> Poll<usize> {
    let mut finished = 0;
    while let Poll::Ready(Some(())) = streams.poll_next_unpin(cx) {
        finished += 1;
    }
    if finished > 0 {
        Poll::Ready(finished)
    } else {
        Poll::Pending
    }
}

/// One stream: the service call (cancelled if the client resets the
/// stream), the answer, the access line.
async fn stream<S: Service>(
    ctx: &Ctx<S>,
    head: Result<RequestHead, Refusal>,
    recv: RecvStream,
    mut respond: SendResponse<Bytes>,
    started: Instant,
) {
    let head = match head {
        Ok(h) => h,
        Err(refusal) => return refuse(ctx, refusal, respond, started).await,
    };
    let mut body = H2Body::new(recv, head.body(), &ctx.limits);
    if head.expects_continue() && !body.is_done() {
        let mut go = http::Response::new(());
        *go.status_mut() = http::StatusCode::CONTINUE;
        let _ = respond.send_informational(go);
    }
    let called = {
        let req = Request {
            head: &head,
            body: RequestBody::h2(&mut body),
            peer: ctx.peer,
            tls: ctx.tls,
            received: started,
        };
        let call = ctx.service.call(req);
        let reset = poll_fn(|cx| respond.poll_reset(cx));
        tokio::select! {
            biased;
            r = call => Some(r),
            _ = reset => None,
        }
    };
    let Some(mut resp) = called else {
        log(ctx, Some(&head), CLIENT_CLOSED, None, started, &[], None);
        return;
    };
    if let Some(e) = body.error {
        // The body broke a limit: whatever the service made of it is void.
        let log_fields = std::mem::take(&mut resp.log);
        resp = Response::text(e.status(), Bytes::from(format!("{e}\n")));
        resp.log = log_fields;
    }
    // Unread request data is discarded with the stream (reset NO_ERROR once
    // the answer is complete, RFC 9113 §8.1).
    drop(body);
    let written = send_response(
        &mut respond,
        &mut resp,
        head.method(),
        Instant::now(),
        &ctx.extra,
        ctx.limits.write_timeout,
    )
    .await;
    if let Err(SendFail::TimedOut) = &written {
        tracing::debug!(peer = ?ctx.peer, "HTTP/2 stream: no window within the write timeout; reset");
    }
    log(
        ctx,
        Some(&head),
        resp.status,
        written.ok(),
        started,
        &resp.log,
        None,
    );
}

/// A request that never reaches the service.
async fn refuse<S: Service>(
    ctx: &Ctx<S>,
    refusal: Refusal,
    mut respond: SendResponse<Bytes>,
    started: Instant,
) {
    match refusal {
        Refusal::Malformed(why) => {
            tracing::debug!(peer = ?ctx.peer, why, "malformed HTTP/2 request: stream reset");
            respond.send_reset(Reason::PROTOCOL_ERROR);
            log(ctx, None, 400, None, started, &[], Some(Error::BadHeader));
        }
        Refusal::Status(e) => {
            tracing::debug!(peer = ?ctx.peer, error = %e, "refusing HTTP/2 request");
            let mut resp = Response::text(e.status(), Bytes::from(format!("{e}\n")));
            let written = send_response(
                &mut respond,
                &mut resp,
                crate::Method::Get,
                Instant::now(),
                &ctx.extra,
                ctx.limits.write_timeout,
            )
            .await;
            log(ctx, None, resp.status, written.ok(), started, &[], Some(e));
        }
    }
}

fn log<S: Service>(
    ctx: &Ctx<S>,
    head: Option<&RequestHead>,
    status: u16,
    bytes: Option<u64>,
    started: Instant,
    fields: &[(&'static str, crate::LogValue)],
    refused: Option<Error>,
) {
    let record = AccessRecord {
        peer: ctx.peer,
        head,
        status,
        bytes,
        elapsed: started.elapsed(),
        fields,
        refused,
    };
    access_log::log_request(&ctx.peer_text, &record);
    ctx.service.on_response(&record);
}
