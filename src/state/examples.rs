//! The page's built-in examples: texts that show something worth seeing on the default model,
//! each with the method and target that make its point and a caption that says what the map
//! shows. `tests/examples.rs` checks each caption on the default model (the target is what the
//! model predicts, and the map's top token is in `evidence`), so a caption cannot drift into a
//! claim the model does not bear out.

use super::settings::Settings;
use crate::engine::{TargetChoice, TargetKind};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Example {
    /// The button's name (`data-example`).
    pub name: &'static str,
    pub label: &'static str,
    pub text: &'static str,
    pub method: &'static str,
    pub target: &'static str,
    /// Where there is one, the map explains target − foil.
    pub foil: Option<&'static str>,
    /// The text (a substring of `text`) whose tokens the map ranks first, as the caption says.
    pub evidence: &'static str,
    pub caption: &'static str,
}

pub static EXAMPLES: [Example; 5] = [
    Example {
        name: "fact",
        label: "A fact",
        text: "The Eiffel Tower is located in the city of",
        method: "saliency",
        target: " Paris",
        foil: None,
        evidence: " Eiffel Tower",
        caption: "Factual recall: the model says “ Paris”, and the map leans hardest on the landmark's name.",
    },
    Example {
        name: "agreement",
        label: "Agreement",
        text: "The keys to the old wooden cabinet",
        method: "grad_x_input",
        target: " are",
        foil: Some(" is"),
        evidence: " keys",
        caption: "Subject–verb agreement: “ are” beats “ is” because of “keys”, not the singular “cabinet” right before the verb.",
    },
    Example {
        name: "names",
        label: "A name to repeat",
        text: "When Mary and John went to the store, John gave a drink to",
        method: "occlusion",
        target: " Mary",
        foil: Some(" John"),
        evidence: " Mary",
        caption: "Indirect object: “ Mary” over “ John”. Leave out the one mention of Mary and the answer goes.",
    },
    Example {
        name: "code",
        label: "Code",
        text: "def scale(values, factor):\n    return [v * factor for v in",
        method: "saliency",
        target: " values",
        foil: None,
        evidence: "values",
        caption: "Code completion: the loop runs over “ values”, copied from the function's parameters.",
    },
    Example {
        name: "french",
        label: "French",
        text: "La tour Eiffel se trouve dans la ville de",
        method: "saliency",
        target: " Paris",
        foil: None,
        evidence: " ville",
        caption: "Not only English: “ Paris” again, with most weight on “ville” (city), then on “Eiffel”.",
    },
];

pub fn by_name(name: &str) -> Option<&'static Example> {
    EXAMPLES.iter().find(|e| e.name == name)
}

impl Example {
    /// The settings that show this example: `base` (the person's view settings and method
    /// parameters are kept) with the example's text, method and target; no continuation.
    pub fn settings(&self, base: &Settings) -> Settings {
        Settings {
            text: self.text.to_string(),
            target: TargetChoice::Text(self.target.to_string()),
            kind: TargetKind::Prob,
            foil: self.foil.map(|f| TargetChoice::Text(f.to_string())),
            method: self.method.to_string(),
            continuation: String::new(),
            compare: Vec::new(),
            ..base.clone()
        }
    }

    /// The byte range of the evidence in the text.
    pub fn evidence_span(&self) -> (usize, usize) {
        let at = self.text.find(self.evidence).expect("an example's evidence is in its text");
        (at, at + self.evidence.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::attribution::methods;

    #[test]
    fn every_example_is_well_formed() {
        for e in EXAMPLES {
            assert!(methods::by_name(e.method).is_ok(), "{}", e.name);
            let (s, end) = e.evidence_span();
            assert!(end < e.text.len() || s > 0, "{}", e.name);
            assert_eq!(by_name(e.name), Some(&e));
            let settings = e.settings(&Settings::default());
            let (checked, notes) = settings.clone().checked();
            assert_eq!(
                (checked, notes),
                (settings, vec![]),
                "an example's settings are within bounds"
            );
        }
    }
}
