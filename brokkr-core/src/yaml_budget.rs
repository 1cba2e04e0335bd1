//! A budget for YAML from users and clusters: how many nodes a document stands for once
//! its aliases are expanded, and how deeply it nests.
//!
//! A few hundred bytes of nested aliases (`b: [*a, *a, ...]`, `c: [*b, *b, ...]`, ...)
//! stand for billions of nodes; a parser that builds values expands every alias and
//! runs out of memory, and padding between the aliases defeats repetition heuristics.
//! [`check`] walks the parser's events once, without building anything, and counts each
//! alias as the size of the node it names. The broker refuses deployment objects over the
//! budget at upload, and the agent checks the same budget before it parses one, so a bad
//! object fails on its own and never takes the agent down.

use std::collections::HashMap;
use std::fmt;

use granit_parser::{Event, Parser};

/// Limits of one YAML stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YamlBudget {
    /// Nodes (scalars, sequences, mappings) after alias expansion, all documents together
    /// (2,000,000: an 8 MiB object of the smallest nodes has about that many; a large
    /// Helm-rendered bundle has tens of thousands).
    pub max_nodes: u64,
    /// Nesting of sequences and mappings (128: a CRD's OpenAPI schema nests a few dozen
    /// levels; the agent's YAML parser stops at 128 too).
    pub max_depth: usize,
    /// Scalar bytes after alias expansion (64 MiB): a large string named by many
    /// aliases is few nodes but a huge value once built.
    pub max_bytes: u64,
}

impl Default for YamlBudget {
    fn default() -> Self {
        Self {
            max_nodes: 2_000_000,
            max_depth: 128,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Why a YAML stream was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlBudgetError {
    /// The stream does not parse.
    #[error("not valid YAML: {0}")]
    Syntax(String),
    /// Expanding its aliases would give more nodes than the budget.
    #[error("expands to more than {max} nodes (aliases of large nodes)")]
    TooManyNodes {
        /// The budget.
        max: u64,
    },
    /// Expanding its aliases would give more scalar bytes than the budget.
    #[error("expands to more than {max} bytes of text (aliases of large values)")]
    TooManyBytes {
        /// The budget.
        max: u64,
    },
    /// Sequences and mappings nest deeper than the budget.
    #[error("nests deeper than {max} levels")]
    TooDeep {
        /// The budget.
        max: usize,
    },
}

/// What [`check`] found in a stream within budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YamlSize {
    /// Nodes after alias expansion.
    pub nodes: u64,
    /// Deepest nesting of sequences and mappings.
    pub depth: usize,
    /// Documents in the stream.
    pub documents: usize,
}

/// An open sequence or mapping: its anchor (0: none) and its expanded size so far.
struct Open {
    anchor: usize,
    nodes: u64,
    bytes: u64,
}

/// Walks `yaml` once and checks it against `budget`, stopping at the first breach (so a
/// bomb costs only the events read up to there).
///
/// # Errors
/// [`YamlBudgetError`] when the stream does not parse or is over budget.
pub fn check(yaml: &str, budget: YamlBudget) -> Result<YamlSize, YamlBudgetError> {
    let mut size = YamlSize {
        nodes: 0,
        depth: 0,
        documents: 0,
    };
    // Expanded size of every anchored node seen, by the parser's anchor id.
    let mut anchored: HashMap<usize, (u64, u64)> = HashMap::new();
    let mut bytes: u64 = 0;
    let mut open: Vec<Open> = Vec::new();
    for item in Parser::new_from_str(yaml) {
        let (event, _span) = item.map_err(|e| YamlBudgetError::Syntax(e.to_string()))?;
        let finished = match event {
            Event::DocumentStart(..) => {
                size.documents += 1;
                None
            }
            Event::SequenceStart(_, anchor, _) | Event::MappingStart(_, anchor, _) => {
                open.push(Open {
                    anchor,
                    nodes: 1,
                    bytes: 0,
                });
                size.depth = size.depth.max(open.len());
                if open.len() > budget.max_depth {
                    return Err(YamlBudgetError::TooDeep {
                        max: budget.max_depth,
                    });
                }
                None
            }
            Event::SequenceEnd | Event::MappingEnd => {
                open.pop().map(|node| (node.anchor, node.nodes, node.bytes))
            }
            Event::Scalar(value, _, anchor, _) => Some((anchor, 1, value.len() as u64)),
            // An alias stands for a copy of the node it names.
            Event::Alias(id) => {
                let (nodes, size) = anchored.get(&id).copied().unwrap_or((1, 0));
                Some((0, nodes, size))
            }
            _ => None,
        };
        let Some((anchor, nodes, size_bytes)) = finished else {
            continue;
        };
        if anchor != 0 {
            anchored.insert(anchor, (nodes, size_bytes));
        }
        if let Some(parent) = open.last_mut() {
            parent.nodes = parent.nodes.saturating_add(nodes);
            parent.bytes = parent.bytes.saturating_add(size_bytes);
        } else {
            size.nodes = size.nodes.saturating_add(nodes);
            bytes = bytes.saturating_add(size_bytes);
        }
        let pending_bytes: u64 = open.iter().map(|o| o.bytes).fold(0, u64::saturating_add);
        if bytes.saturating_add(pending_bytes) > budget.max_bytes {
            return Err(YamlBudgetError::TooManyBytes {
                max: budget.max_bytes,
            });
        }
        // Open collections count what they hold so far: a bomb is refused while it is
        // still being read, before its closing events.
        let pending: u64 = open.iter().map(|o| o.nodes).fold(0, u64::saturating_add);
        if size.nodes.saturating_add(pending) > budget.max_nodes {
            return Err(YamlBudgetError::TooManyNodes {
                max: budget.max_nodes,
            });
        }
    }
    Ok(size)
}

impl fmt::Display for YamlSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} nodes, depth {}, {} documents",
            self.nodes, self.depth, self.documents
        )
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    /// `levels` levels of `fan` aliases each to the level below: fan^levels nodes from
    /// a few hundred bytes, each alias padded with a comment line.
    fn bomb(levels: usize, fan: usize) -> String {
        let mut yaml = String::from("a0: &a0 [lol]\n");
        for level in 1..=levels {
            let aliases = vec![format!("*a{}", level - 1); fan].join(", ");
            let _ = writeln!(yaml, "# padding {level}\na{level}: &a{level} [{aliases}]");
        }
        yaml
    }

    #[test]
    fn ordinary_manifests_pass_and_are_measured() {
        let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: b\n---\nkind: Service\n";
        let size = check(yaml, YamlBudget::default()).unwrap();
        assert_eq!(size.documents, 2);
        assert_eq!(size.depth, 2);
        // doc 1: map, 4 keys, 4 values (one a map with 2 nodes, one a map with 2); doc 2: map + 2
        assert_eq!(size.nodes, 1 + 8 + 2 + 2 + 3);
    }

    #[test]
    fn aliases_count_as_what_they_name() {
        let yaml = "base: &b {x: 1, y: 2}\none: *b\ntwo: *b\n";
        let size = check(yaml, YamlBudget::default()).unwrap();
        // map + 3 keys + anchored map (5 nodes) + two aliases of 5 nodes
        assert_eq!(size.nodes, 1 + 3 + 5 + 5 + 5);
    }

    #[test]
    fn a_billion_laughs_is_refused_early() {
        let yaml = bomb(9, 10);
        assert!(yaml.len() < 1024, "{} bytes", yaml.len());
        assert_eq!(
            check(&yaml, YamlBudget::default()),
            Err(YamlBudgetError::TooManyNodes { max: 2_000_000 })
        );
        // A small one passes.
        assert!(check(&bomb(3, 10), YamlBudget::default()).is_ok());
    }

    #[test]
    fn a_large_string_named_many_times_is_refused() {
        let big = "x".repeat(1024 * 1024);
        let mut yaml = format!("a: &a {big}\nb: [");
        yaml.push_str(&vec!["*a"; 100].join(", "));
        yaml.push_str("]\n");
        assert_eq!(
            check(&yaml, YamlBudget::default()),
            Err(YamlBudgetError::TooManyBytes {
                max: 64 * 1024 * 1024
            })
        );
        let fine = format!("a: &a {big}\nb: [*a, *a]\n");
        assert!(check(&fine, YamlBudget::default()).is_ok());
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(
            check(&deep, YamlBudget::default()),
            Err(YamlBudgetError::TooDeep { max: 128 })
        );
        let fine = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(check(&fine, YamlBudget::default()).is_ok());
    }

    #[test]
    fn broken_yaml_says_so() {
        assert!(matches!(
            check("a: [1, 2", YamlBudget::default()),
            Err(YamlBudgetError::Syntax(_))
        ));
    }
}
