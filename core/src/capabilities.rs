//! What a backend can do, declared once as data (after OpenDAL's `Capability`). The
//! Launcher checks requests against it before any API call, and the conformance suite
//! picks its cases from it.

use std::time::Duration;

use serde::Serialize;

use crate::billing::BillingRule;

/// Who makes sure an instance is gone by its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeadlineEnforcement {
    /// The cloud's control plane deletes it (GCE `maxRunDuration`, the simulator).
    Cloud,
    /// A watchdog in the guest shuts it down and the cloud then terminates it (EC2).
    Guest,
    /// Nothing does: launches are refused, since every launch must have a deadline.
    None,
}

#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Capabilities {
    pub spot: bool,
    /// spot-or-on-demand handled by the backend itself.
    pub spot_fallback: bool,
    pub gpu: bool,
    pub tags: bool,
    /// Most instances one launch call may ask for; larger launches are split.
    pub max_launch_batch: u32,
    /// Most instances one terminate call may name.
    pub max_terminate_batch: u32,
    /// Regions this backend serves.
    pub regions: Vec<String>,
    /// Same launch id twice yields the same instances.
    pub idempotent_launch: bool,
    pub deadline: DeadlineEnforcement,
    pub keepalive: bool,
    /// Commands can be run inside an instance (`Provider::exec`).
    pub exec: bool,
    pub leftovers: bool,
    pub billing: BillingRule,
    /// Warning given before a spot instance is reclaimed.
    pub spot_notice: Duration,
    /// What the cloud accepts as tags (labels on GCE), checked on a launch's full tag
    /// set at plan time ([`crate::tags::check_limits`]).
    pub tag_limits: TagLimits,
}

impl Capabilities {
    /// Nothing supported; backends switch on what they have.
    pub fn none(billing: BillingRule) -> Self {
        Capabilities {
            spot: false,
            spot_fallback: false,
            gpu: false,
            tags: false,
            max_launch_batch: 1,
            max_terminate_batch: 1,
            regions: Vec::new(),
            idempotent_launch: false,
            deadline: DeadlineEnforcement::None,
            keepalive: false,
            exec: false,
            leftovers: false,
            billing,
            spot_notice: Duration::ZERO,
            tag_limits: TagLimits::PORTABLE,
        }
    }
}

/// One cloud's rules for the tags on one resource, as data. Lengths count characters
/// (Unicode scalar values), as the clouds' documentation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TagLimits {
    /// Whose rules these are, for messages: `EC2`, `GCE labels`, `Azure`.
    pub name: &'static str,
    pub max_tags: usize,
    pub max_key_chars: usize,
    pub max_value_chars: usize,
    /// Keys and values only lowercase `[a-z0-9_-]`, a key starting with a letter (GCE).
    pub label_alphabet: bool,
    /// Characters no key may contain.
    pub forbidden_key_chars: &'static str,
    /// Key prefixes the cloud keeps for itself, compared in lowercase.
    pub reserved_prefixes: &'static [&'static str],
    /// Whether the reserved prefixes are refused at the start of values too (AWS).
    pub reserved_in_values: bool,
    /// Keys that differ only in case are the same key (Azure).
    pub case_insensitive_keys: bool,
    /// Tags the backend adds itself to every resource (counted against `max_tags`).
    pub backend_tags: &'static [&'static str],
}

impl TagLimits {
    /// EC2: 50 tags per resource, keys up to 128 characters, values up to 256, any
    /// characters on EC2 resources, the `aws:` prefix reserved in keys and values.
    /// <https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/Using_Tags.html#tag-restrictions>
    pub const EC2: TagLimits = TagLimits {
        name: "EC2",
        max_tags: 50,
        max_key_chars: 128,
        max_value_chars: 256,
        label_alphabet: false,
        forbidden_key_chars: "",
        reserved_prefixes: &["aws:"],
        reserved_in_values: true,
        case_insensitive_keys: false,
        backend_tags: &[],
    };

    /// GCE labels: at most 64 per resource; keys 1-63 and values 0-63 characters of
    /// lowercase letters, digits, `_` and `-`; a key starts with a lowercase letter
    /// (GCE also allows international letters; herd keeps to ASCII).
    /// <https://cloud.google.com/compute/docs/labeling-resources#requirements>
    pub const GCE: TagLimits = TagLimits {
        name: "GCE labels",
        max_tags: 64,
        max_key_chars: 63,
        max_value_chars: 63,
        label_alphabet: true,
        forbidden_key_chars: "",
        reserved_prefixes: &[],
        reserved_in_values: false,
        case_insensitive_keys: false,
        backend_tags: &[],
    };

    /// Azure: 50 tag name-value pairs per resource, names up to 512 characters without
    /// `<>%&\?/`, values up to 256; names are case-insensitive and the prefixes
    /// `microsoft`, `azure` and `windows` are Azure's.
    /// <https://learn.microsoft.com/en-us/azure/azure-resource-manager/management/tag-resources#limitations>
    pub const AZURE: TagLimits = TagLimits {
        name: "Azure",
        max_tags: 50,
        max_key_chars: 512,
        max_value_chars: 256,
        label_alphabet: false,
        forbidden_key_chars: "<>%&\\?/",
        reserved_prefixes: &["microsoft", "azure", "windows"],
        reserved_in_values: false,
        case_insensitive_keys: true,
        backend_tags: &[],
    };

    /// What every cloud above accepts at once: herd's own convention, for a backend that
    /// declares nothing stricter or looser.
    pub const PORTABLE: TagLimits = TagLimits {
        name: "every cloud",
        max_tags: 50,
        max_key_chars: 63,
        max_value_chars: 63,
        label_alphabet: true,
        forbidden_key_chars: "<>%&\\?/",
        reserved_prefixes: &["aws:", "microsoft", "azure", "windows"],
        reserved_in_values: true,
        case_insensitive_keys: true,
        backend_tags: &[],
    };

    /// These limits with tags the backend adds to every resource itself.
    pub const fn with_backend_tags(mut self, keys: &'static [&'static str]) -> Self {
        self.backend_tags = keys;
        self
    }
}
