//! A ground-truth suite: texts whose evidence for the next token is known by construction, as
//! JSON lines (documented in `docs/ground-truth.md`). A suite read from a file is hostile input:
//! it is bounded and checked here, once, before any item reaches the model.

use crate::engine::error::{EngineError, Result};
use crate::engine::model::tokenizer::Token;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// The task an item belongs to: what decides its answer, and so where its evidence is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Subject–verb agreement across an attractor: the subject noun decides the verb's number.
    Agreement,
    /// Indirect object: the name mentioned once (not the repeated one) is the one given to.
    IndirectObject,
    /// A fact about the subject: the subject's tokens carry it.
    Factual,
    /// Copying: the token that followed the earlier occurrence of the current token.
    Induction,
}

impl Family {
    pub const ALL: [Family; 4] =
        [Family::Agreement, Family::IndirectObject, Family::Factual, Family::Induction];

    pub fn name(self) -> &'static str {
        match self {
            Family::Agreement => "agreement",
            Family::IndirectObject => "indirect_object",
            Family::Factual => "factual",
            Family::Induction => "induction",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Family::Agreement => "Subject–verb agreement",
            Family::IndirectObject => "Indirect object",
            Family::Factual => "Factual subject",
            Family::Induction => "Induction (copy)",
        }
    }
}

/// One item: a text, the next token that is right and (where the family has one) the foil it is
/// told apart from, and the character spans of the evidence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub id: String,
    pub family: Family,
    pub text: String,
    /// One token's text, with its leading space (" are").
    pub target: String,
    #[serde(default)]
    pub foil: Option<String>,
    /// `[start, end)` in characters (Unicode scalar values) of `text`.
    pub evidence: Vec<[usize; 2]>,
    #[serde(default)]
    pub note: String,
}

/// Bounds on a suite from outside: enough for any real suite, small enough that a hostile file
/// cannot make the page hold or run without end.
pub const MAX_ITEMS: usize = 10_000;
const MAX_TEXT_CHARS: usize = 2_000;
const MAX_TOKEN_CHARS: usize = 64;
const MAX_SPANS: usize = 16;
const MAX_ID_CHARS: usize = 64;
const MAX_NOTE_CHARS: usize = 500;

#[derive(Clone, Debug, PartialEq)]
pub struct Suite {
    pub items: Vec<Item>,
}

impl Suite {
    /// Reads JSON lines (blank lines are skipped), checking every item.
    pub fn from_jsonl(text: &str) -> Result<Self> {
        let mut items = Vec::new();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            if items.len() == MAX_ITEMS {
                return Err(invalid(format!("a suite holds at most {MAX_ITEMS} items")));
            }
            let item: Item =
                serde_json::from_str(line).map_err(|e| invalid(format!("line {}: {e}", n + 1)))?;
            item.check().map_err(|why| invalid(format!("line {} ({}): {why}", n + 1, item.id)))?;
            items.push(item);
        }
        if items.is_empty() {
            return Err(invalid("the suite has no items".into()));
        }
        let mut ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        ids.sort_unstable();
        if let Some(twice) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(invalid(format!("the id {:?} is used twice", twice[0])));
        }
        Ok(Self { items })
    }

    pub fn to_jsonl(&self) -> String {
        let line = |item: &Item| serde_json::to_string(item).expect("an item serialises");
        self.items.iter().map(|item| line(item) + "\n").collect()
    }

    pub fn family(&self, family: Family) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(move |item| item.family == family)
    }

    pub fn by_id(&self, id: &str) -> Option<&Item> {
        self.items.iter().find(|item| item.id == id)
    }
}

fn invalid(why: String) -> EngineError {
    EngineError::InvalidRequest(format!("Not a usable ground-truth suite: {why}."))
}

impl Item {
    /// The item's own consistency, before any model sees it.
    pub fn check(&self) -> std::result::Result<(), String> {
        let chars = self.text.chars().count();
        let bounded = |what: &str, text: &str, max: usize| match text.chars().count() {
            n if n > max => Err(format!("its {what} is longer than {max} characters")),
            _ => Ok(()),
        };
        bounded("id", &self.id, MAX_ID_CHARS)?;
        bounded("text", &self.text, MAX_TEXT_CHARS)?;
        bounded("target", &self.target, MAX_TOKEN_CHARS)?;
        bounded("note", &self.note, MAX_NOTE_CHARS)?;
        if let Some(foil) = &self.foil {
            bounded("foil", foil, MAX_TOKEN_CHARS)?;
            if *foil == self.target {
                return Err("its foil is its target".into());
            }
        }
        if self.id.is_empty() || self.text.trim().is_empty() || self.target.is_empty() {
            return Err("it needs an id, a text and a target".into());
        }
        if self.evidence.is_empty() || self.evidence.len() > MAX_SPANS {
            return Err(format!("it needs between 1 and {MAX_SPANS} evidence spans"));
        }
        for &[start, end] in &self.evidence {
            if start >= end || end > chars {
                return Err(format!("the evidence span [{start}, {end}) is not within its text"));
            }
        }
        Ok(())
    }

    /// The evidence spans in bytes of `text`.
    fn byte_spans(&self) -> Vec<Range<usize>> {
        let offset = |c: usize| self.text.char_indices().nth(c).map_or(self.text.len(), |(b, _)| b);
        self.evidence.iter().map(|&[start, end]| offset(start)..offset(end)).collect()
    }

    /// The positions of `tokens` (the text's tokenization) that the evidence covers, or why the
    /// spans do not fall on token boundaries.
    pub fn evidence_tokens(&self, tokens: &[Token]) -> std::result::Result<Vec<usize>, String> {
        let mut starts = Vec::with_capacity(tokens.len());
        let mut offset = 0;
        for token in tokens {
            starts.push(offset);
            offset += token.byte_len;
        }
        if offset != self.text.len() {
            return Err("the tokens do not cover the text exactly".into());
        }
        let mut evidence = Vec::new();
        for span in self.byte_spans() {
            let covered: Vec<usize> = (0..tokens.len())
                .filter(|&i| tokens[i].byte_len > 0)
                .filter(|&i| starts[i] < span.end && starts[i] + tokens[i].byte_len > span.start)
                .collect();
            let whole = covered
                .iter()
                .all(|&i| starts[i] >= span.start && starts[i] + tokens[i].byte_len <= span.end);
            if covered.is_empty() || !whole {
                return Err(format!(
                    "the evidence {:?} does not cover whole tokens",
                    &self.text[span.clone()]
                ));
            }
            evidence.extend(covered);
        }
        evidence.sort_unstable();
        evidence.dedup();
        Ok(evidence)
    }
}

/// The positions a method's scores are ranked over: every token of the text's own (not an
/// inserted BOS, not a control token).
pub fn ranked_positions(tokens: &[Token]) -> Vec<usize> {
    (0..tokens.len()).filter(|&i| tokens[i].byte_len > 0 && !tokens[i].special).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(evidence: Vec<[usize; 2]>) -> Item {
        Item {
            id: "x".into(),
            family: Family::Agreement,
            text: "The keys to the cabinet, I think,".into(),
            target: " are".into(),
            foil: Some(" is".into()),
            evidence,
            note: String::new(),
        }
    }

    #[test]
    fn suites_from_outside_are_checked() {
        let good = item(vec![[3, 8]]);
        let line = serde_json::to_string(&good).unwrap();
        assert_eq!(Suite::from_jsonl(&format!("{line}\n\n")).unwrap().items, vec![good.clone()]);
        for bad in [
            String::new(),
            "{}".to_string(),
            format!("{line}\n{line}"),
            serde_json::to_string(&item(vec![[8, 3]])).unwrap(),
            serde_json::to_string(&item(vec![[3, 800]])).unwrap(),
            serde_json::to_string(&item(vec![])).unwrap(),
            serde_json::to_string(&Item { foil: Some(" are".into()), ..good.clone() }).unwrap(),
            line.replace("\"note\"", "\"extra\":1,\"note\""),
        ] {
            assert!(Suite::from_jsonl(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn evidence_maps_to_whole_tokens_only() {
        let token =
            |text: &str| Token { id: 0, text: text.into(), byte_len: text.len(), special: false };
        let bos = Token { id: 1, text: "<s>".into(), byte_len: 0, special: true };
        let tokens: Vec<Token> = std::iter::once(bos)
            .chain(["The", " keys", " to", " the", " cabinet", ",", " I", " think", ","].map(token))
            .collect();
        assert_eq!(item(vec![[3, 8]]).evidence_tokens(&tokens), Ok(vec![2]));
        assert_eq!(item(vec![[3, 11], [15, 23]]).evidence_tokens(&tokens), Ok(vec![2, 3, 5]));
        assert!(item(vec![[4, 8]]).evidence_tokens(&tokens).is_err());
        assert_eq!(ranked_positions(&tokens), (1..10).collect::<Vec<_>>());
    }
}
