//! The built-in suite, generated from templates with controlled variation, so every item's
//! evidence is known by construction. Deterministic: the same suite on every target and run
//! (`salient suite` prints it). No template ends on its evidence or on an attractor.

use crate::engine::evaluation::suite::{Family, Item, Suite};
use crate::engine::runtime::random::SplitMix64;

const PER_FAMILY: usize = 120;
const SEED: u64 = 0x5a11e47;

/// A text being built, keeping the character spans of the pieces marked as evidence.
#[derive(Default)]
struct Text {
    text: String,
    evidence: Vec<[usize; 2]>,
}

impl Text {
    fn push(&mut self, piece: &str) -> &mut Self {
        self.text.push_str(piece);
        self
    }

    fn evidence(&mut self, piece: &str) -> &mut Self {
        let start = self.text.chars().count();
        self.text.push_str(piece);
        self.evidence.push([start, start + piece.chars().count()]);
        self
    }

    fn item(
        &mut self,
        family: Family,
        n: usize,
        answer: (&str, Option<&str>),
        note: String,
    ) -> Item {
        Item {
            id: format!("{}-{n:03}", family.name()),
            family,
            text: std::mem::take(&mut self.text),
            target: answer.0.to_string(),
            foil: answer.1.map(str::to_string),
            evidence: std::mem::take(&mut self.evidence),
            note,
        }
    }
}

fn pick<'a, T>(rng: &mut SplitMix64, from: &'a [T]) -> &'a T {
    &from[rng.below(from.len() as u64) as usize]
}

/// The built-in suite: four families of [`PER_FAMILY`] items each.
pub fn builtin() -> Suite {
    let mut rng = SplitMix64::new(SEED);
    let mut items = Vec::new();
    items.extend((0..PER_FAMILY).map(|n| agreement(n, &mut rng)));
    items.extend((0..PER_FAMILY).map(|n| indirect_object(n, &mut rng)));
    items.extend((0..PER_FAMILY).map(|n| factual(n, &mut rng)));
    items.extend((0..PER_FAMILY).map(|n| induction(n, &mut rng)));
    Suite { items }
}

/// (singular, plural)
const SUBJECTS: &[(&str, &str)] = &[
    ("key", "keys"),
    ("author", "authors"),
    ("dog", "dogs"),
    ("teacher", "teachers"),
    ("car", "cars"),
    ("book", "books"),
    ("girl", "girls"),
    ("student", "students"),
    ("doctor", "doctors"),
    ("bird", "birds"),
    ("player", "players"),
    ("painting", "paintings"),
];
const ATTRACTORS: &[(&str, &str)] = &[
    ("cabinet", "cabinets"),
    ("table", "tables"),
    ("window", "windows"),
    ("tree", "trees"),
    ("garden", "gardens"),
    ("house", "houses"),
    ("road", "roads"),
    ("farmer", "farmers"),
];
const PREPOSITIONS: &[&str] = &["to", "near", "behind", "next to", "beside", "from"];
/// Words between the attractor's article and the attractor: the distractor distance.
const DISTANCES: &[&str] = &["", " old", " big old", " small wooden"];
/// What follows the attractor, so it is not the last token.
const TAILS: &[&str] = &[", I think,", ", as you know,", " over there", ", of course,"];

/// "The keys to the old cabinet, I think," → " are" (foil " is"); evidence " keys".
fn agreement(n: usize, rng: &mut SplitMix64) -> Item {
    let (singular, plural) = *pick(rng, SUBJECTS);
    let (attractor_one, attractor_many) = *pick(rng, ATTRACTORS);
    let plural_subject = n % 2 == 1;
    // Half the items put an attractor of the other number between subject and verb.
    let mismatch = (n / 2).is_multiple_of(2);
    let subject = if plural_subject { plural } else { singular };
    let attractor = if plural_subject != mismatch { attractor_many } else { attractor_one };
    let distance = pick(rng, DISTANCES);
    let (verb, other) = if plural_subject { (" are", " is") } else { (" is", " are") };
    let note = format!(
        "{} subject, {} attractor \"{attractor}\"",
        if plural_subject { "plural" } else { "singular" },
        if mismatch { "mismatched" } else { "matching" }
    );
    Text::default()
        .push("The")
        .evidence(&format!(" {subject}"))
        .push(&format!(
            " {} the{distance} {attractor}{}",
            pick(rng, PREPOSITIONS),
            pick(rng, TAILS)
        ))
        .item(Family::Agreement, n, (verb, Some(other)), note)
}

const NAMES: &[&str] = &[
    "Mary", "John", "Anna", "David", "Sarah", "James", "Emma", "Michael", "Laura", "Daniel",
    "Alice", "Robert", "Kate", "Peter", "Lisa", "Tom",
];
const PLACES: &[&str] = &["store", "park", "school", "beach", "office", "market", "library"];
const OBJECTS: &[&str] = &["drink", "book", "gift", "letter", "ball", "key", "flower", "ticket"];

/// "When Mary and John went to the store, John gave a drink to" → " Mary" (foil " John");
/// evidence: the one mention of " Mary".
fn indirect_object(n: usize, rng: &mut SplitMix64) -> Item {
    let given = *pick(rng, NAMES);
    let giver = loop {
        let name = *pick(rng, NAMES);
        if name != given {
            break name;
        }
    };
    let (place, object) = (pick(rng, PLACES), pick(rng, OBJECTS));
    // Both orders of the first mentions (ABBA and BABA), and two sentence frames.
    let (first, second) = if n.is_multiple_of(2) { (given, giver) } else { (giver, given) };
    let mut text = Text::default();
    text.push(if (n / 2).is_multiple_of(2) { "When" } else { "After" });
    for (k, name) in [first, second].into_iter().enumerate() {
        text.push(if k == 0 { "" } else { " and" });
        if name == given {
            text.evidence(&format!(" {name}"));
        } else {
            text.push(&format!(" {name}"));
        }
    }
    text.push(&format!(" went to the {place}, {giver} gave a {object} to"));
    let (target, foil) = (format!(" {given}"), format!(" {giver}"));
    let note = format!("{giver} is repeated; {given} is mentioned once");
    text.item(Family::IndirectObject, n, (&target, Some(&foil)), note)
}

/// (country, capital)
const CAPITALS: &[(&str, &str)] = &[
    ("France", "Paris"),
    ("Germany", "Berlin"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Japan", "Tokyo"),
    ("Russia", "Moscow"),
    ("Egypt", "Cairo"),
    ("Greece", "Athens"),
    ("Ireland", "Dublin"),
    ("Austria", "Vienna"),
    ("Portugal", "Lisbon"),
    ("Norway", "Oslo"),
    ("Sweden", "Stockholm"),
    ("Poland", "Warsaw"),
    ("China", "Beijing"),
    ("Canada", "Ottawa"),
    ("Syria", "Damascus"),
    ("Hungary", "Budapest"),
    ("Finland", "Helsinki"),
    ("Belgium", "Brussels"),
    ("England", "London"),
    ("Kenya", "Nairobi"),
    ("Peru", "Lima"),
    ("Cuba", "Havana"),
    ("Iraq", "Baghdad"),
    ("Iran", "Tehran"),
    ("Chile", "Santiago"),
    ("Denmark", "Copenhagen"),
    ("South Korea", "Seoul"),
    ("Australia", "Canberra"),
];
const FACT_FRAMES: &[(&str, &str)] = &[
    ("The capital of", " is the city of"),
    ("The capital city of", " is"),
    ("In", ", the government sits in the capital city of"),
    ("The largest city and capital of", " is called"),
];

/// "The capital of France is the city of" → " Paris" (foil: another capital); evidence
/// " France".
fn factual(n: usize, rng: &mut SplitMix64) -> Item {
    let (country, capital) = CAPITALS[n % CAPITALS.len()];
    let (before, after) = FACT_FRAMES[(n / CAPITALS.len()) % FACT_FRAMES.len()];
    let foil = loop {
        let (_, other) = *pick(rng, CAPITALS);
        if other != capital {
            break other;
        }
    };
    let (target, foil) = (format!(" {capital}"), format!(" {foil}"));
    Text::default().push(before).evidence(&format!(" {country}")).push(after).item(
        Family::Factual,
        n,
        (&target, Some(&foil)),
        format!("{capital} is the capital of {country}"),
    )
}

const WORDS: &[&str] = &[
    "apple", "river", "stone", "lamp", "chair", "cloud", "horse", "paper", "glass", "tiger",
    "bread", "music", "garden", "window", "silver", "candle", "mountain", "pencil", "orange",
    "castle", "rabbit", "forest", "bottle", "engine", "planet", "summer", "island", "mirror",
    "violin", "rocket",
];

/// "List: apple river stone lamp chair cloud. List: apple river" → " stone"; evidence: the
/// earlier " stone", which followed the earlier " river".
fn induction(n: usize, rng: &mut SplitMix64) -> Item {
    let order = rng.permutation(WORDS.len());
    let length = 6 + n % 3;
    let sequence: Vec<&str> = order[..length].iter().map(|&i| WORDS[i]).collect();
    let repeated = 2 + (n / 3) % 3; // 2 to 4 words repeated, then the next is asked for
    let answer = sequence[repeated];
    let mut text = Text::default();
    text.push("List:");
    for &word in &sequence {
        if word == answer {
            text.evidence(&format!(" {word}"));
        } else {
            text.push(&format!(" {word}"));
        }
    }
    text.push(". List:");
    for word in &sequence[..repeated] {
        text.push(&format!(" {word}"));
    }
    let note = format!("\"{}\" was followed by \"{answer}\" before", sequence[repeated - 1]);
    text.item(Family::Induction, n, (&format!(" {answer}"), None), note)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_suite_is_deterministic_and_well_formed() {
        let suite = builtin();
        assert_eq!(suite, builtin());
        let reread = Suite::from_jsonl(&suite.to_jsonl()).unwrap();
        assert_eq!(reread, suite);
        for family in Family::ALL {
            assert!(suite.family(family).count() >= 100, "{family:?}");
        }
        for item in &suite.items {
            // The evidence is never the last word.
            let chars = item.text.chars().count();
            assert!(item.evidence.iter().all(|&[_, end]| end < chars), "{item:?}");
        }
    }
}
