//! A rule and what the plan says about rules: their ids, how they are listed, what applying
//! one looks like, and why a rule or a plan is refused.

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fault::Fault;
use crate::when::When;

/// One rule of a scenario's `faults:` list: a fault and when it applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// A name to refer to the rule by (expectations such as `reconnects: { after: <name> }`,
    /// reports); optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When the fault applies; absent or `{}` = always.
    #[serde(default)]
    pub when: When,
    /// What goes wrong.
    pub fault: Fault,
}

impl FaultRule {
    /// A rule that applies `fault` whenever `when` holds.
    pub fn new(when: When, fault: Fault) -> Self {
        FaultRule {
            name: None,
            when,
            fault,
        }
    }

    /// Checks that every trigger makes sense for this fault's category.
    pub fn validate(&self) -> Result<(), RuleError> {
        crate::validate::validate(self)
    }
}

/// A rule's id: stable for the plan's lifetime, never reused.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct RuleId(pub u64);

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A rule as listed by [`FaultPlan::rules`](crate::FaultPlan::rules): its id and content.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ListedRule {
    /// The rule's id (used to remove it).
    pub id: RuleId,
    /// The rule.
    #[serde(flatten)]
    pub rule: FaultRule,
}

/// A fault the plan decided to apply, with the rule that caused it (for the event log).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Applied<F> {
    /// The rule that fired.
    pub rule: RuleId,
    /// The fault to apply.
    pub fault: F,
    /// When the rule's window ends (time since the emulator started), if it has an end.
    #[serde(
        with = "crate::duration::human_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub until: Option<Duration>,
}

/// A rule that does not make sense, e.g. `messages` on a DNS fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{fault}: {reason}")]
pub struct RuleError {
    /// The fault as written, e.g. `dns: nxdomain`.
    pub fault: String,
    /// What is wrong and what to write instead.
    pub reason: String,
}

/// Why a plan could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// A rule of the initial list is invalid.
    #[error("fault rule {index}")]
    Rule {
        /// 0-based position in the list.
        index: usize,
        /// What is wrong.
        #[source]
        source: RuleError,
    },
    /// The list has more rules than a plan holds ([`MAX_RULES`](crate::limits::MAX_RULES)).
    #[error("{rules} fault rules; a plan holds at most {limit}")]
    TooMany {
        /// How many rules were given.
        rules: usize,
        /// The limit, [`MAX_RULES`](crate::limits::MAX_RULES).
        limit: usize,
    },
}

/// Why rules could not be added to a running plan
/// ([`FaultPlan::add`](crate::FaultPlan::add),
/// [`FaultPlan::add_all`](crate::FaultPlan::add_all)). Nothing was added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddError {
    /// The rule does not make sense or exceeds a bound.
    #[error(transparent)]
    Invalid(#[from] RuleError),
    /// Rule `index` of a list does not make sense or exceeds a bound.
    #[error("rule {index}: {error}")]
    InvalidInList {
        /// 0-based position in the list.
        index: usize,
        /// What is wrong (part of this error's message, so not also its source).
        error: RuleError,
    },
    /// The plan would hold more than [`MAX_RULES`](crate::limits::MAX_RULES) rules: remove some first.
    #[error(
        "too many fault rules: the plan holds {rules} and {adding} more would exceed the limit of {limit}; remove rules (or reset) first"
    )]
    TooMany {
        /// Rules in the plan now.
        rules: usize,
        /// Rules that were to be added.
        adding: usize,
        /// The limit, [`MAX_RULES`](crate::limits::MAX_RULES).
        limit: usize,
    },
}
