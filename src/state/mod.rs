//! The page's state, native so that it is tested and fuzzed natively: every choice on the page
//! (`settings`), the link codec (`link`), what links and exports hold (`shared`), and how scores
//! become colours (`colour`). Nothing here touches the browser; `web` renders and persists them.

pub mod colour;
pub mod link;
pub mod settings;
pub mod shared;
