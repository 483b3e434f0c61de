//! Boxes that go back to the thread that allocated them.
//!
//! A per-request record (a request span's, an access log line's) is boxed on a runtime worker
//! and dropped by another thread (the span export task, the access log writer). glibc's
//! allocator keeps a small cache of free chunks per thread: a chunk freed on another thread
//! lands in that thread's cache (or its arena), so the worker's next `malloc` of the size
//! misses its cache, and the other thread's `free` often misses too (measured with callgrind:
//! ~0.4k instructions per box for the pair, plus the record built on the stack and copied
//! into its new box). Here the consuming thread sends the boxes, cleared, back to their home
//! thread through a small bounded channel per thread ([`Home`]); a thread takes a box from
//! its free list, else from its channel, else allocates one ([`Local::take`]). A full channel
//! (the home thread makes no records now) or a gone thread: the boxes are freed where they
//! are. A thread never holds more boxes than it had records in flight at once; nothing is
//! shared between threads but the channels (no lock).

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

/// Batches of returned boxes a thread's channel holds.
const RETURNED_BATCHES: usize = 4;

/// Most boxes a thread keeps on its own free list from [`Local::give_back`].
const MAX_FREE: usize = 64;

/// A thread's channel for its returned boxes (the boxes it allocated hold it).
pub struct Home<T>(SyncSender<Vec<Box<T>>>);

impl<T> std::fmt::Debug for Home<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Home")
    }
}

/// A record that knows its box's home thread.
pub trait Homed: Sized {
    /// The home of its box (`None`: allocated where there was no [`Local`]; freed).
    fn home(&self) -> Option<&Arc<Home<Self>>>;
}

/// A thread's boxes (keep it in a `thread_local!`): its free list and its channel.
pub struct Local<T> {
    free: Vec<Box<T>>,
    back: Receiver<Vec<Box<T>>>,
    home: Arc<Home<T>>,
}

impl<T> Default for Local<T> {
    fn default() -> Local<T> {
        let (tx, back) = sync_channel(RETURNED_BATCHES);
        Local {
            free: Vec::new(),
            back,
            home: Arc::new(Home(tx)),
        }
    }
}

impl<T> Local<T> {
    /// A box from the free list or the channel (cleared by its consumer), `None` when there
    /// is none: allocate one holding [`Local::home`].
    #[inline]
    pub fn take(&mut self) -> Option<Box<T>> {
        if let Some(b) = self.free.pop() {
            return Some(b);
        }
        self.free = self.back.try_recv().ok()?;
        self.free.pop()
    }

    /// This thread's channel, for a new box to hold.
    pub fn home(&self) -> Arc<Home<T>> {
        self.home.clone()
    }

    /// A cleared box not sent anywhere, back on the free list.
    pub fn give_back(&mut self, b: Box<T>) {
        if self.free.len() < MAX_FREE {
            self.free.push(b);
        }
    }
}

/// A home thread and the boxes going back to it.
type Batch<T> = (Arc<Home<T>>, Vec<Box<T>>);

/// The boxes a consumer is done with, gathered per home thread and sent back by
/// [`Returns::send`] (few threads make records: a linear search).
pub struct Returns<T> {
    homes: Vec<Batch<T>>,
}

impl<T> Default for Returns<T> {
    fn default() -> Returns<T> {
        Returns { homes: Vec::new() }
    }
}

impl<T> Returns<T> {
    /// Adds a cleared box (one without a home is freed).
    #[inline]
    pub fn push(&mut self, b: Box<T>)
    where
        T: Homed,
    {
        let i = match b.home() {
            None => return,
            Some(home) => match self.homes.iter().position(|(h, _)| Arc::ptr_eq(h, home)) {
                Some(i) => i,
                None => {
                    self.homes.push((home.clone(), Vec::with_capacity(64)));
                    self.homes.len() - 1
                }
            },
        };
        self.homes[i].1.push(b);
    }

    /// Sends the boxes back (those whose channel is full or gone are freed here).
    pub fn send(&mut self) {
        for (home, v) in self.homes.drain(..) {
            let _ = home.0.try_send(v);
        }
    }
}
