//! mlsoc's Sigma detection engine.
//!
//! Reads rules as the Sigma community writes them (specification 2.1.0:
//! rule documents, every value modifier, the full condition grammar,
//! multi-document files), compiles each detection into matchers over
//! [`schema::Event`] fields, and evaluates them event by event without
//! copying field values.

pub mod condition;
pub mod loader;
pub mod matcher;
pub mod modifiers;
pub mod pattern;
pub mod rule;

pub use loader::{ErrorKind, Loaded, Loader, Loading, Origin, RuleError};
pub use modifiers::Placeholders;
pub use rule::{Level, LogSource, Rule};

/// A set of loaded rules, evaluated together.
#[derive(Debug, Default)]
pub struct Engine {
    rules: Vec<Loaded>,
}

impl Engine {
    pub fn new(rules: Vec<Loaded>) -> Engine {
        Engine { rules }
    }

    pub fn rules(&self) -> &[Loaded] {
        &self.rules
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Calls `hit` with the index of every rule the event matches, in rule
    /// order.
    pub fn eval(&self, ev: &schema::Event, hit: &mut impl FnMut(usize)) {
        for (i, l) in self.rules.iter().enumerate() {
            if l.rule.detection.matches(ev) {
                hit(i);
            }
        }
    }
}
