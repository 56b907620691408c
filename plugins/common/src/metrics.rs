//! Metric names. Envoy shows a Wasm counter named `wasmgate.<plugin>.<name>` as
//! `wasmcustom.wasmgate.<plugin>.<name>` on its admin `/stats` and Prometheus endpoints.

pub const PREFIX: &str = "wasmgate";

/// How often a plugin hands its counters to the proxy. Counting is a host call, ~1.9k instructions under V8;
/// adding to a slot in the module and flushing the totals on a timer makes it free on the request path. A
/// counter may lag by up to this period; a root context the proxy deletes (a new config, the plugin removed)
/// flushes as it goes, so only a crashed VM loses its last period's counts.
pub const FLUSH_PERIOD: std::time::Duration = std::time::Duration::from_millis(200);

pub fn metric_name(plugin: &str, name: &str) -> String {
    format!("{PREFIX}.{plugin}.{name}")
}

/// Declares a plugin's counters once: an enum whose variants are the counters' indexes, each beside its metric
/// name, so a name and the code that bumps it cannot drift apart.
///
/// ```
/// wasmgate_common::counters! {
///     pub enum Counter {
///         Accepted = "accepted",
///         Refused = "refused.size",
///     }
/// }
/// assert_eq!(Counter::NAMES, ["accepted", "refused.size"]);
/// assert_eq!((Counter::Refused.index(), Counter::Refused.name()), (1, "refused.size"));
/// ```
#[macro_export]
macro_rules! counters {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$doc:meta])* $variant:ident = $metric:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $name {
            $($(#[$doc])* $variant),+
        }

        impl $name {
            /// Every counter's metric name, in index order (what the plugin defines at configure time).
            pub const NAMES: &'static [&'static str] = &[$($metric),+];

            /// The counter's index among the plugin's counters.
            pub const fn index(self) -> usize {
                self as usize
            }

            pub const fn name(self) -> &'static str {
                Self::NAMES[self as usize]
            }
        }
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert_eq!(super::metric_name("basic_auth", "allowed"), "wasmgate.basic_auth.allowed");
    }

    crate::counters! {
        enum Example {
            First = "first",
            /// Documented variants work too.
            Second = "second.one",
        }
    }

    #[test]
    fn counters_index_in_declaration_order() {
        assert_eq!(Example::NAMES, ["first", "second.one"]);
        assert_eq!((Example::First.index(), Example::Second.index()), (0, 1));
        assert_eq!(Example::Second.name(), "second.one");
    }
}
