//! What every layer of the engine runs on: the run's context (a stop token, a progress sink, a
//! memory budget), its parallel maps over the front end's thread pool, the count of how far a
//! computation has come, a seeded random source, and waiting for a computation's future.

pub mod context;
pub mod parallel;
pub mod progress;
pub mod random;
pub mod ready;
