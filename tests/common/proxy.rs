//! A TCP proxy between a client and a server, standing for the network and the server's
//! availability: closed, it cuts the connections it carries and drops every new one, as a
//! server restarting does; reopened, it carries connections to the same server (whose state
//! survived, as a restarted server's does); held, it stops passing the client's bytes on after
//! a given count, to catch a client in the middle of a request. It counts what it saw, so tests
//! wait for conditions, not for time.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

#[derive(Debug, Default, Clone)]
pub struct Counts {
    /// Connections carried to the server.
    pub carried: u64,
    /// Connections dropped on arrival while closed.
    pub dropped: u64,
    /// Bytes passed from clients to the server.
    pub sent: u64,
    /// Client-to-server copies waiting, held.
    pub waiting: u64,
    /// Answers withheld, as armed with [`Proxy::withhold_answer`].
    pub withheld: u64,
}

#[derive(Default)]
struct State {
    counts: Counts,
    closed: bool,
    stopped: bool,
    /// Client bytes stop being passed on once `sent` reaches this.
    hold_at: Option<u64>,
    /// The answer to the next request holding these bytes is withheld.
    withhold: Option<Vec<u8>>,
    /// Both ends of every connection carried, to cut them when closing.
    live: Vec<TcpStream>,
}

struct Shared {
    server: SocketAddr,
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }
}

pub struct Proxy {
    pub endpoint: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Proxy {
    /// A proxy to the HTTP `server` (`http://host:port`), open.
    pub fn start(server: &str) -> Proxy {
        let server: SocketAddr = server.trim_start_matches("http://").parse().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            server,
            state: Mutex::default(),
            changed: Condvar::new(),
        });
        let accepting = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let mut state = accepting.lock();
                if state.stopped {
                    return;
                }
                if state.closed {
                    state.counts.dropped += 1;
                    continue;
                }
                state.counts.carried += 1;
                drop(state);
                carry(&accepting, client);
            }
        });
        Proxy {
            endpoint: format!("http://{addr}"),
            addr,
            shared,
        }
    }

    pub fn counts(&self) -> Counts {
        self.shared.lock().counts.clone()
    }

    /// Cuts every connection and drops new ones until [`Proxy::open`].
    pub fn close(&self) {
        let mut state = self.shared.lock();
        state.closed = true;
        for stream in state.live.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    pub fn open(&self) {
        self.shared.lock().closed = false;
    }

    /// Passes on at most `bytes` more of the clients' bytes, then holds the rest.
    pub fn hold_after(&self, bytes: u64) {
        let mut state = self.shared.lock();
        state.hold_at = Some(state.counts.sent + bytes);
    }

    /// Withholds the answer to the next request whose bytes hold `request` (its method and
    /// path, say): the server has it whole and does what was asked, the client never hears,
    /// as when a server hangs after applying a request; the connection stays open.
    pub fn withhold_answer(&self, request: &str) {
        self.shared.lock().withhold = Some(request.as_bytes().to_vec());
    }

    /// Passes everything on again.
    pub fn release(&self) {
        self.shared.lock().hold_at = None;
        self.shared.changed.notify_all();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.close();
        self.shared.lock().stopped = true;
        self.release();
        // Wakes the accepting thread, which sees it is stopped and ends.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Carries `client` to the server, a thread each way.
fn carry(shared: &Arc<Shared>, client: TcpStream) {
    let Ok(server) = TcpStream::connect(shared.server) else {
        return;
    };
    let ends = [&client, &server].map(|s| s.try_clone().unwrap());
    shared.lock().live.extend(ends);
    // Set once a request of this connection is to go unanswered.
    let cut = Arc::new(AtomicBool::new(false));
    let (up, up_from) = (shared.clone(), client.try_clone().unwrap());
    let (up_to, up_cut) = (server.try_clone().unwrap(), cut.clone());
    std::thread::spawn(move || pass_on(&up, up_from, up_to, true, &up_cut));
    let down = shared.clone();
    std::thread::spawn(move || pass_on(&down, server, client, false, &cut));
}

/// Copies `from` to `to` until either ends, counting (and, if held, holding) the client's
/// bytes when `upstream`; then ends `to`'s writing side, as the other end ended its own.
/// `cut_here` is the connection's: set upstream when an armed request passes, it stops the
/// copying downstream at the server's answer, which is the next thing the server sends (a
/// client sends a request only once it has the answer before); [`State::live`] keeps both
/// sockets open.
fn pass_on(
    shared: &Shared,
    mut from: TcpStream,
    mut to: TcpStream,
    upstream: bool,
    cut_here: &AtomicBool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buf) {
        let mut chunk = &buf[..n];
        if upstream {
            let mut state = shared.lock();
            let armed = state
                .withhold
                .as_ref()
                .is_some_and(|at| chunk.windows(at.len()).any(|w| w == at.as_slice()));
            if armed {
                state.withhold = None;
                state.counts.withheld += 1;
                cut_here.store(true, Ordering::SeqCst);
            }
        } else if cut_here.load(Ordering::SeqCst) {
            return;
        }
        while !chunk.is_empty() {
            let allowed = if upstream {
                let mut state = shared.lock();
                loop {
                    match state.hold_at {
                        Some(at) if state.counts.sent >= at => {
                            state.counts.waiting += 1;
                            state = shared.changed.wait(state).unwrap();
                            state.counts.waiting -= 1;
                        }
                        Some(at) => break (at - state.counts.sent.min(at)) as usize,
                        None => break chunk.len(),
                    }
                }
                .min(chunk.len())
            } else {
                chunk.len()
            };
            if to.write_all(&chunk[..allowed]).is_err() {
                let _ = from.shutdown(Shutdown::Both);
                return;
            }
            if upstream {
                shared.lock().counts.sent += allowed as u64;
            }
            chunk = &chunk[allowed..];
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
