//! The accept loop: connections served by hyper with the limits that keep one client from
//! holding the process's resources (OWASP API4), and the graceful shutdown.
//!
//! - At most [`Limits::max_connections`] connections are open at once: the loop takes a permit
//!   before accepting, so connections beyond the cap wait in the kernel's listen backlog.
//! - A request head must arrive within [`Limits::header_timeout`] (hyper's header-read timer,
//!   which runs from the moment a connection waits for a head, a first one or the next one).
//! - A connection with no request in flight for [`Limits::idle_timeout`] is closed, whatever
//!   it is doing: sending nothing, or half a request, or idling between keep-alive requests.
//!   It is first asked to close (a response being sent is finished), and dropped if it has
//!   not closed within another idle timeout: a client that stops reading a response holds its
//!   connection no longer than that, and neither does it hold up a shutdown.
//!
//! `axum::serve` has none of these, hence this loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tower_service::Service;

/// How many connections the server holds, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time to send a complete request head.
    pub header_timeout: Duration,
    /// Time a connection may go without a request in flight.
    pub idle_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// When a connection last finished a request, and how many it is serving.
#[derive(Debug)]
struct Activity {
    opened: Instant,
    /// Milliseconds from `opened` to the end of the last request (or 0).
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    fn last(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_ms.load(Ordering::SeqCst))
    }

    /// Resolves once the connection has had no request in flight for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            if self.in_flight.load(Ordering::SeqCst) > 0 {
                // The end of the request moves `last` on; look again a timeout later.
                tokio::time::sleep(timeout).await;
                continue;
            }
            let deadline = self.last() + timeout;
            if deadline <= Instant::now() {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A request being served: counted until its response is ready.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let since_open = self.0.opened.elapsed().as_millis();
        self.0.last_ms.store(
            u64::try_from(since_open).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves; then stops
/// accepting, lets every connection finish the request it is serving, and returns once all
/// are closed.
pub(super) async fn run(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was accepted: the
                    // listener stays good; pause so a full descriptor table can drain.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (builder, router, mut stopping) = (builder.clone(), router.clone(), stopping.clone());
        tokio::spawn(async move {
            let activity = Arc::new(Activity::new());
            let counted = activity.clone();
            let service = hyper::service::service_fn(move |request| {
                let in_flight = counted.begin();
                let mut router = router.clone();
                async move {
                    let response = router.call(request).await;
                    drop(in_flight);
                    response
                }
            });
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let idle = activity.idle_for(limits.idle_timeout);
            tokio::pin!(idle);
            let hard_stop = tokio::time::sleep(Duration::MAX);
            tokio::pin!(hard_stop);
            let mut closing = false;
            loop {
                let close = tokio::select! {
                    _ = connection.as_mut() => break,
                    () = &mut hard_stop, if closing => break,
                    () = &mut idle, if !closing => true,
                    _ = stopping.wait_for(|stop| *stop), if !closing => true,
                };
                if close {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                    hard_stop
                        .as_mut()
                        .reset(Instant::now() + limits.idle_timeout);
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    stop.send_replace(true);
    // Every connection holds a permit until it closes: all of them back means all closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
}
