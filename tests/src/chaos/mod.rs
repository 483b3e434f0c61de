//! # The chaos suite
//!
//! Concurrent clients write and read a map of registers through the admin gRPC API of different
//! control nodes while a nemesis kills, restarts and partitions the nodes; the recorded history is
//! then checked for linearizability, for lost acknowledged writes and for convergence.
//!
//! * [`checker`]: Porcupine's linearizability checker, ported (why: see its module doc).
pub mod checker;
pub mod relays;
