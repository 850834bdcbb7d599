//! What every layer of the engine runs on: its parallel maps over the front end's thread pool,
//! and the count of how far a computation has come.

pub mod parallel;
pub mod progress;
