//! (regdesk patch) Bounds on what peers may hold: the number of open
//! connections, and the time a request head may take once begun. Open
//! connections are tracked with what each is doing, so that near the bound
//! the ones doing nothing (waiting for a request, then sending a head
//! slowly) are closed to make room, oldest first.

use std::collections::HashMap;
use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::connection::Connection;

/// What the server lets its peers hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once; past it, a new one is closed at once
    /// unless an idle one can be closed for it.
    pub max_connections: usize,
    /// How long a request head may take from its first byte.
    pub header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 10_000,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// Being answered, or reading its body: never closed to make room.
const BUSY: u8 = 0;
/// Waiting for the first byte of a request.
const IDLE: u8 = 1;
/// Reading a request head.
const HEAD: u8 = 2;
/// Closed to make room; its thread ends at its next read.
const EVICTED: u8 = 3;

/// One open connection as the tracker sees it.
pub(crate) struct Tracked {
    stream: Arc<Connection>,
    phase: AtomicU8,
    /// When the phase began, in microseconds since the tracker began.
    since: AtomicU64,
    epoch: Instant,
}

impl Tracked {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    pub(crate) fn stream(&self) -> &Connection {
        &self.stream
    }

    /// The connection waits for a request (its previous one is answered).
    pub(crate) fn idle(&self) {
        self.since.store(self.now(), Ordering::Relaxed);
        // Only this connection's thread moves it out of BUSY.
        let _ = self
            .phase
            .compare_exchange(BUSY, IDLE, Ordering::AcqRel, Ordering::Acquire);
    }

    /// A request's first byte came; false when the connection was closed to
    /// make room meanwhile.
    pub(crate) fn head(&self) -> bool {
        self.since.store(self.now(), Ordering::Relaxed);
        self.moved(IDLE, HEAD)
    }

    /// The head is read whole: from now on the connection is not closed to
    /// make room. False when it was closed meanwhile.
    pub(crate) fn busy(&self) -> bool {
        self.moved(HEAD, BUSY)
    }

    fn moved(&self, from: u8, to: u8) -> bool {
        self.phase
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// The open connections of a server.
pub(crate) struct Tracker {
    limits: Limits,
    epoch: Instant,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    next: u64,
    all: HashMap<u64, Arc<Tracked>>,
}

/// A connection's place among the open ones, given back when dropped.
pub(crate) struct Slot {
    tracker: Arc<Tracker>,
    id: u64,
    pub(crate) tracked: Arc<Tracked>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.tracker.lock().all.remove(&self.id);
    }
}

impl Tracker {
    pub(crate) fn new(limits: Limits) -> Arc<Tracker> {
        Arc::new(Tracker {
            limits,
            epoch: Instant::now(),
            open: Mutex::new(Open::default()),
        })
    }

    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for a new connection, or `None` when it must be closed at
    /// once. From seven eighths of the bound on, each new connection
    /// closes one that is doing nothing, so that a client that sends a
    /// request finds room before one that holds a connection idle.
    pub(crate) fn admit(self: &Arc<Tracker>, stream: Arc<Connection>) -> Option<Slot> {
        let max = self.limits.max_connections.max(1);
        let mut open = self.lock();
        if open.all.len() >= max - max / 8 {
            let evicted = evict(&mut open, 1) > 0;
            if open.all.len() >= max && !evicted {
                return None;
            }
        }
        let tracked = Arc::new(Tracked {
            stream,
            phase: AtomicU8::new(IDLE),
            since: AtomicU64::new(self.epoch.elapsed().as_micros() as u64),
            epoch: self.epoch,
        });
        let id = open.next;
        open.next += 1;
        open.all.insert(id, tracked.clone());
        Some(Slot {
            tracker: self.clone(),
            id,
            tracked,
        })
    }

    /// Closes up to `n` connections that are doing nothing (when the
    /// process has run out of descriptors); returns how many.
    pub(crate) fn make_room(&self, n: usize) -> usize {
        evict(&mut self.lock(), n)
    }
}

/// Closes up to `n` connections: idle ones first, then those reading a
/// head, the longest waiting first of each. A closed one stays counted
/// until its thread sees the close and gives its place back.
fn evict(open: &mut Open, n: usize) -> usize {
    let mut candidates: Vec<(u8, u64, u64, &Arc<Tracked>)> = open
        .all
        .iter()
        .filter_map(|(id, t)| {
            let phase = t.phase.load(Ordering::Acquire);
            let rank = match phase {
                IDLE => 0,
                HEAD => 1,
                _ => return None,
            };
            Some((rank, t.since.load(Ordering::Relaxed), *id, t))
        })
        .collect();
    // Only the first `n` are wanted (near the bound, one per connection
    // accepted): no sort of every open connection. Ties (a microsecond
    // apart) go to the connection opened first.
    if n == 0 {
        return 0;
    }
    if candidates.len() > n {
        candidates.select_nth_unstable_by_key(n - 1, |(rank, since, id, _)| (*rank, *since, *id));
        candidates.truncate(n);
    }
    let mut closed = 0;
    for (_, _, _, t) in candidates {
        let phase = t.phase.load(Ordering::Acquire);
        if (phase == IDLE || phase == HEAD) && t.moved(phase, EVICTED) {
            t.stream.shutdown(Shutdown::Both).ok();
            closed += 1;
        }
    }
    closed
}

/// The pause after a failed `accept`: 1 ms, doubled at each failure in a
/// row, at most 100 ms, so that a lack of descriptors is waited out
/// without spinning.
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(1);
    const MOST: Duration = Duration::from_millis(100);

    pub(crate) fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    pub(crate) fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    /// The pause to take now; the next one is twice as long.
    pub(crate) fn pause(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(Self::MOST);
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    /// A connected socket (the server's end), and the client's end to keep
    /// it open.
    fn pair(listener: &TcpListener) -> (Arc<Connection>, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (Arc::new(Connection::from(server)), client)
    }

    fn tracker(max: usize) -> Arc<Tracker> {
        Tracker::new(Limits {
            max_connections: max,
            header_timeout: Duration::from_secs(1),
        })
    }

    #[test]
    fn past_the_bound_a_busy_server_closes_new_connections() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let tracker = tracker(2);
        let mut held = Vec::new();
        for _ in 0..2 {
            let (conn, client) = pair(&listener);
            let slot = tracker.admit(conn).expect("room");
            assert!(slot.tracked.head() && slot.tracked.busy());
            held.push((slot, client));
        }
        let (conn, _client) = pair(&listener);
        assert!(tracker.admit(conn).is_none());
        held.pop();
        let (conn, _client) = pair(&listener);
        assert!(tracker.admit(conn).is_some(), "a place given back is taken");
    }

    #[test]
    fn near_the_bound_the_longest_idle_is_closed_first() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let tracker = tracker(3);
        let (conn, _a) = pair(&listener);
        let heading = tracker.admit(conn).unwrap();
        assert!(heading.tracked.head());
        let (conn, _b) = pair(&listener);
        let idle = tracker.admit(conn).unwrap();
        let (conn, _c) = pair(&listener);
        let newest = tracker.admit(conn).unwrap();
        let (conn, _d) = pair(&listener);
        assert!(tracker.admit(conn).is_some());
        assert!(!idle.tracked.head(), "the older idle one was not closed");
        assert!(newest.tracked.head(), "the newer idle one was closed");
        assert!(heading.tracked.busy(), "one reading a head went before an idle one");
    }

    #[test]
    fn the_backoff_doubles_up_to_its_most() {
        let mut b = Backoff::new();
        assert_eq!(b.pause(), Duration::from_millis(1));
        assert_eq!(b.pause(), Duration::from_millis(2));
        for _ in 0..20 {
            b.pause();
        }
        assert_eq!(b.pause(), Backoff::MOST);
        b.reset();
        assert_eq!(b.pause(), Backoff::FIRST);
    }
}
