//! What an attribution explains: a scalar function of the next-token logits. The target token's
//! probability by default; its log-probability or logit; or, contrastively, the difference
//! between the target's and a foil token's value.

use crate::engine::error::Result;
use candle_core::{Tensor, D};
use candle_nn::ops;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    #[default]
    Prob,
    LogProb,
    Logit,
}

impl TargetKind {
    pub const ALL: [TargetKind; 3] = [TargetKind::Prob, TargetKind::LogProb, TargetKind::Logit];

    /// The name used in the CLI's `--target-kind`, share links and the page's select.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Prob => "prob",
            TargetKind::LogProb => "logprob",
            TargetKind::Logit => "logit",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// How the quantity reads in the page ("p( Paris)").
    pub fn symbol(self) -> &'static str {
        match self {
            TargetKind::Prob => "p",
            TargetKind::LogProb => "log p",
            TargetKind::Logit => "logit",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    pub target: u32,
    pub kind: TargetKind,
    /// Contrastive: explain value(target) − value(foil).
    pub foil: Option<u32>,
}

impl Objective {
    /// The explained scalar for each row of `(batch, vocab)` logits, as a `(batch,)` tensor.
    pub fn score(&self, logits: &Tensor) -> Result<Tensor> {
        let values = match self.kind {
            TargetKind::Prob => ops::softmax(logits, D::Minus1)?,
            TargetKind::LogProb => ops::log_softmax(logits, D::Minus1)?,
            TargetKind::Logit => logits.clone(),
        };
        let pick = |id: u32| values.narrow(D::Minus1, id as usize, 1)?.squeeze(D::Minus1);
        let target = pick(self.target)?;
        Ok(match self.foil {
            Some(foil) => (target - pick(foil)?)?,
            None => target,
        })
    }
}
