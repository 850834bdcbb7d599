//! Grouping per-token scores into words and sentences: it never loses or double-counts a token,
//! and on real byte-level BPE tokens it finds the words and sentences a reader would.

mod common;
use candle_core::DType;
use salient::engine::attribution::grouping::{group, Granularity, Group};
use salient::engine::model::tokenizer::Token;

fn texts(groups: &[Group]) -> Vec<&str> {
    groups.iter().map(|g| g.text.as_str()).collect()
}

fn spans(groups: &[Group]) -> Vec<(usize, usize)> {
    groups.iter().map(|g| (g.first, g.last)).collect()
}

/// Tokens as the tokenizer would show them (`\xNN` for bytes of a split character); `<|…|>`
/// spellings are special tokens.
fn tokens(texts: &[&str]) -> Vec<Token> {
    texts
        .iter()
        .map(|t| Token {
            id: 0,
            text: t.to_string(),
            byte_len: t.len(),
            special: t.starts_with("<|"),
        })
        .collect()
}

#[test]
fn words_and_sentences_of_a_real_tokenization() {
    let model = common::load_model(DType::F32);
    let tokens = model.tokenizer.tokenize(" Hello, world!\nNew line 12345 東京 ok").unwrap();
    let shown: Vec<&str> = tokens.iter().map(|t| t.text.as_str()).collect();
    // SmolLM splits digits, and 東京 into bytes: " \xE6" "\x9D" "\xB1" (東) and "\xE4\xBA" "\xAC" (京).
    assert_eq!(
        shown,
        [
            " Hello",
            ",",
            " world",
            "!",
            "\n",
            "New",
            " line",
            " ",
            "1",
            "2",
            "3",
            "4",
            "5",
            " \\xE6",
            "\\x9D",
            "\\xB1",
            "\\xE4\\xBA",
            "\\xAC",
            " ok"
        ]
    );
    let scores: Vec<f32> = (0..tokens.len()).map(|i| i as f32 - 3.0).collect();

    let words = group(&tokens, &scores, Granularity::Word);
    assert_eq!(
        texts(&words),
        [" Hello", ",", " world", "!", "\n", "New", " line", " 12345", " 東", "京", " ok"]
    );
    let number = &words[7];
    assert_eq!((number.first, number.last), (7, 12));
    assert_eq!(number.sum, (7..=12).map(|i| i as f32 - 3.0).sum::<f32>());
    assert_eq!(number.max_abs, 9.0);
    assert_eq!(spans(&words[8..10]), [(13, 15), (16, 17)]);
    assert_eq!((words[0].sum, words[0].max_abs), (-3.0, 3.0));

    let sentences = group(&tokens, &scores, Granularity::Sentence);
    assert_eq!(texts(&sentences), [" Hello, world!\n", "New line 12345 東京 ok"]);
    assert_eq!(spans(&sentences), [(0, 4), (5, 18)]);

    let per_token = group(&tokens, &scores, Granularity::Token);
    assert_eq!(texts(&per_token), shown);
}

#[test]
fn hand_cases() {
    let cases: &[(&[&str], Granularity, &[&str])] = &[
        // A decimal point between digits belongs to the number and ends no sentence.
        (
            &["Pi", " is", " ", "3", ".", "1", "4", "."],
            Granularity::Word,
            &["Pi", " is", " 3.14", "."],
        ),
        (&["Pi", " is", " ", "3", ".", "1", "4", "."], Granularity::Sentence, &["Pi is 3.14."]),
        // A run of one mark is one word; different marks are not.
        (&["Wow", "!", "!", "?"], Granularity::Word, &["Wow", "!!", "?"]),
        // Whitespace and closing marks after a sentence end stay with that sentence.
        (&["Hi", ".", " ", "1", "2"], Granularity::Sentence, &["Hi. ", "12"]),
        (&["Wow", "!", "!", "?"], Granularity::Sentence, &["Wow!!?"]),
        (
            &["\"", "No", ".\"", " (", "Yes", ".)", " Ok"],
            Granularity::Sentence,
            &["\"No.\"", " (Yes.)", " Ok"],
        ),
        (&["Yes", "。", "は", "い"], Granularity::Sentence, &["Yes。", "はい"]),
        (&["Yes", "。", "は", "い"], Granularity::Word, &["Yes", "。", "は", "い"]),
        // Special tokens stand alone; a newline ends a sentence.
        (
            &["<|im_start|>", "user", "\n", "Hi", "<|im_end|>"],
            Granularity::Word,
            &["<|im_start|>", "user", "\n", "Hi", "<|im_end|>"],
        ),
        (
            &["<|im_start|>", "user", "\n", "Hi", "<|im_end|>"],
            Granularity::Sentence,
            &["<|im_start|>", "user\n", "Hi", "<|im_end|>"],
        ),
        // An emoji split over two tokens stays one character; an apostrophe starts a word.
        (&[" \\xF0\\x9F", "\\x91\\x8D", " it", "'s"], Granularity::Word, &[" 👍", " it", "'s"]),
    ];
    for (pieces, granularity, expected) in cases {
        let tokens = tokens(pieces);
        let groups = group(&tokens, &vec![1.0; tokens.len()], *granularity);
        assert_eq!(texts(&groups), *expected, "{pieces:?} by {granularity:?}");
    }
}

/// Token texts to draw random sequences from: words, digits, separators, whitespace, punctuation,
/// CJK characters whole and split into bytes, a split emoji, and special tokens.
const POOL: &[&str] = &[
    " Hello",
    "world",
    ",",
    ".",
    "!",
    "?",
    "...",
    "\n",
    " ",
    "\n\n",
    "1",
    "2",
    "0",
    " 東",
    "京",
    "。",
    " \\xE6",
    "\\x9D",
    "\\xB1",
    "\\xE4\\xBA",
    "\\xAC",
    "\\xF0\\x9F",
    "\\x91\\x8D",
    "<|im_start|>",
    "<|im_end|>",
    " (",
    ")",
    "-",
    "'s",
    " ok",
];

#[test]
fn groups_cover_every_token_once_in_order() {
    let mut rng = common::Rng::new(2024);
    for case in 0..2000 {
        let n = 1 + (rng.next_f64() * 40.0) as usize;
        let pieces: Vec<&str> =
            (0..n).map(|_| POOL[(rng.next_f64() * POOL.len() as f64) as usize]).collect();
        let tokens = tokens(&pieces);
        let scores: Vec<f32> =
            (0..n).map(|_| (rng.normal() * 10f64.powf(rng.normal())) as f32).collect();
        let mut starts_by_granularity = Vec::new();
        for granularity in [Granularity::Token, Granularity::Word, Granularity::Sentence] {
            let groups = group(&tokens, &scores, granularity);
            let context = format!("case {case}, {granularity:?}, {pieces:?}");
            // Consecutive, non-empty, from 0 to n - 1: every token in exactly one group.
            assert_eq!(groups[0].first, 0, "{context}");
            assert_eq!(groups.last().unwrap().last, n - 1, "{context}");
            for pair in groups.windows(2) {
                assert_eq!(pair[1].first, pair[0].last + 1, "{context}");
            }
            assert!(groups.iter().all(|g| g.first <= g.last), "{context}");
            // Each group's sum and largest |score| are those of its tokens, and the sums add up
            // to the total. Tolerance: f32 summation error, at most n·ε·Σ|s| whatever the order.
            let sum_abs: f32 = scores.iter().map(|s| s.abs()).sum();
            let tolerance = n as f32 * f32::EPSILON * sum_abs;
            for g in &groups {
                let run = &scores[g.first..=g.last];
                assert!((g.sum - run.iter().sum::<f32>()).abs() <= tolerance, "{context}");
                assert_eq!(g.max_abs, run.iter().fold(0f32, |m, s| m.max(s.abs())), "{context}");
                let special = tokens[g.first..=g.last].iter().filter(|t| t.special).count();
                assert!(
                    special == 0 || g.first == g.last,
                    "a special token shares a group: {context}"
                );
            }
            let total: f32 = groups.iter().map(|g| g.sum).sum();
            assert!((total - scores.iter().sum::<f32>()).abs() <= tolerance, "{context}");
            starts_by_granularity.push((
                groups.iter().map(|g| g.first).collect::<Vec<_>>(),
                texts(&groups).concat(),
            ));
        }
        // Sentences are runs of whole words, and neither cuts a character in two: the texts of
        // words and of sentences read the same.
        let (words, sentences) = (&starts_by_granularity[1], &starts_by_granularity[2]);
        assert!(sentences.0.iter().all(|s| words.0.contains(s)), "case {case}: {pieces:?}");
        assert_eq!(words.1, sentences.1, "case {case}: {pieces:?}");
    }
}
