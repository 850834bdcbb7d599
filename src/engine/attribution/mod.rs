//! Attribution over a model: one question (`problem`, `objective`), the methods that answer it
//! (`methods`), what is measured of their answers (`faithfulness`, `grouping`, `stats`), and what
//! a run needs in memory (`memory`).

pub mod components;
pub mod faithfulness;
pub mod grouping;
pub mod least_squares;
pub mod memory;
pub mod methods;
pub mod objective;
pub mod problem;
pub mod stats;
