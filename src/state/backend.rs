//! Which backend the page's worker computes on: the person's choice for this browser, kept in
//! its storage and never in links (it is about the reader's machine, not the result).

/// The choice offered on the page, as the worker's address names it (`worker.js?backend=gpu`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendChoice {
    /// The GPU where the browser offers one, else the CPU.
    #[default]
    Auto,
    Gpu,
    Cpu,
}

impl BackendChoice {
    pub const ALL: [BackendChoice; 3] =
        [BackendChoice::Auto, BackendChoice::Gpu, BackendChoice::Cpu];

    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Gpu => "gpu",
            BackendChoice::Cpu => "cpu",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Gpu => "GPU",
            BackendChoice::Cpu => "CPU",
        }
    }

    /// One of the names exactly; anything else (from an address or storage) is no choice.
    pub fn from_name(text: &str) -> Option<BackendChoice> {
        Self::ALL.into_iter().find(|c| c.name() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_nothing_else_is_a_choice() {
        for choice in BackendChoice::ALL {
            assert_eq!(BackendChoice::from_name(choice.name()), Some(choice));
        }
        for text in ["", "GPU", "gpu ", "webgpu", "cpu\u{0}", "autö"] {
            assert_eq!(BackendChoice::from_name(text), None, "{text:?}");
        }
    }
}
