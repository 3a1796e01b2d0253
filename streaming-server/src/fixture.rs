//! The data a server starts from: users with their tokens, flows with their members, and the
//! open 1-to-1 conversations. Generated (`streaming-server fixture`), loaded from JSON
//! (`serve --fixture FILE`) and validated, or the small built-in one.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A user's id.
pub type UserId = u64;

/// One user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Unique id.
    pub id: UserId,
    /// Display name.
    pub name: String,
    /// Bearer token. Never logged.
    pub token: String,
}

/// One flow (a channel of an organisation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    /// Organisation name: `[a-z0-9_-]+`.
    pub org: String,
    /// Flow name within the organisation: `[a-z0-9_-]+`.
    pub name: String,
    /// User ids of the members.
    pub members: Vec<UserId>,
}

impl Flow {
    /// `org/name`, as in a stream filter.
    pub fn path(&self) -> String {
        format!("{}/{}", self.org, self.name)
    }
}

/// Everything the server starts from. Extra keys in a file are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fixture {
    /// Users.
    pub users: Vec<User>,
    /// Flows.
    pub flows: Vec<Flow>,
    /// Open 1-to-1 conversations, as pairs of user ids.
    #[serde(default)]
    pub one_to_ones: Vec<[UserId; 2]>,
}

/// Why a fixture was refused. Each message names the offending entry.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// The file could not be read.
    #[error("cannot read fixture {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not fixture JSON.
    #[error(
        "fixture {path} is not valid fixture JSON: {source} (expected {{\"users\": [...], \"flows\": [...], \"one_to_ones\": [...]}})"
    )]
    Parse {
        /// The file.
        path: String,
        /// What serde_json said, with line and column.
        source: serde_json::Error,
    },
    /// Two users share an id.
    #[error("users[{index}]: id {id} is used twice")]
    DuplicateUser {
        /// Position in `users`.
        index: usize,
        /// The id.
        id: UserId,
    },
    /// A token is empty, has whitespace or control characters, or is shared.
    #[error("users[{index}] (id {id}): {problem}")]
    BadToken {
        /// Position in `users`.
        index: usize,
        /// The user's id.
        id: UserId,
        /// What is wrong (the token itself is never printed).
        problem: &'static str,
    },
    /// An org or flow name is not `[a-z0-9_-]{1,64}`.
    #[error("flows[{index}]: {what} {value:?} must be 1-64 characters of a-z, 0-9, '_' or '-'")]
    BadName {
        /// Position in `flows`.
        index: usize,
        /// `org` or `name`.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// Two flows share `org/name`.
    #[error("flows[{index}]: {path} is defined twice")]
    DuplicateFlow {
        /// Position in `flows`.
        index: usize,
        /// `org/name`.
        path: String,
    },
    /// A member, or a 1-to-1 side, is not a user.
    #[error("{place}: user {id} does not exist in users")]
    UnknownUser {
        /// Where, e.g. `flows[3].members` or `one_to_ones[0]`.
        place: String,
        /// The id.
        id: UserId,
    },
    /// A 1-to-1 with oneself.
    #[error("one_to_ones[{index}]: a 1-to-1 needs two different users (got {id} twice)")]
    SelfConversation {
        /// Position in `one_to_ones`.
        index: usize,
        /// The id.
        id: UserId,
    },
}

impl Fixture {
    /// Loads and validates a fixture file.
    pub fn load(path: &Path) -> Result<Fixture, FixtureError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| FixtureError::Read {
            path: shown.clone(),
            source,
        })?;
        let fixture: Fixture =
            serde_json::from_str(&text).map_err(|source| FixtureError::Parse {
                path: shown,
                source,
            })?;
        fixture.validate()?;
        Ok(fixture)
    }

    /// Checks ids, tokens, names and references; the first problem found is returned.
    pub fn validate(&self) -> Result<(), FixtureError> {
        let mut ids = HashSet::new();
        let mut tokens = HashSet::new();
        for (index, u) in self.users.iter().enumerate() {
            if !ids.insert(u.id) {
                return Err(FixtureError::DuplicateUser { index, id: u.id });
            }
            let problem = if u.token.is_empty() {
                Some("token is empty")
            } else if u.token.len() > 256 {
                Some("token is longer than 256 bytes")
            } else if !u.token.bytes().all(|b| b.is_ascii_graphic()) {
                Some("token must be printable ASCII without spaces")
            } else if !tokens.insert(u.token.as_str()) {
                Some("token is shared with another user")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(FixtureError::BadToken {
                    index,
                    id: u.id,
                    problem,
                });
            }
        }
        let mut paths = HashSet::new();
        for (index, f) in self.flows.iter().enumerate() {
            for (what, value) in [("org", &f.org), ("name", &f.name)] {
                if !valid_name(value) {
                    return Err(FixtureError::BadName {
                        index,
                        what,
                        value: value.clone(),
                    });
                }
            }
            if !paths.insert(f.path()) {
                return Err(FixtureError::DuplicateFlow {
                    index,
                    path: f.path(),
                });
            }
            if let Some(&id) = f.members.iter().find(|m| !ids.contains(m)) {
                return Err(FixtureError::UnknownUser {
                    place: format!("flows[{index}].members"),
                    id,
                });
            }
        }
        for (index, [a, b]) in self.one_to_ones.iter().enumerate() {
            for id in [a, b] {
                if !ids.contains(id) {
                    return Err(FixtureError::UnknownUser {
                        place: format!("one_to_ones[{index}]"),
                        id: *id,
                    });
                }
            }
            if a == b {
                return Err(FixtureError::SelfConversation { index, id: *a });
            }
        }
        Ok(())
    }

    /// A random but repeatable fixture: `users` users with 32-hex-digit tokens, `flows` flows
    /// in organisations of up to 10 flows, each user a member of up to 3 flows (every flow has
    /// members), and about two open 1-to-1s per user.
    pub fn generate(users: usize, flows: usize, seed: u64) -> Fixture {
        Self::generate_with(users, flows, 3.min(flows), seed)
    }

    /// Like [`generate`](Self::generate) with each user a member of `per_user` flows.
    pub fn generate_with(users: usize, flows: usize, per_user: usize, seed: u64) -> Fixture {
        let mut rng = fastrand::Rng::with_seed(seed);
        let users_v: Vec<User> = (1..=users as u64)
            .map(|id| User {
                id,
                name: format!("user{id}"),
                token: format!("{:016x}{:016x}", rng.u64(..), rng.u64(..)),
            })
            .collect();
        let mut members: Vec<BTreeSet<UserId>> = vec![BTreeSet::new(); flows];
        if flows > 0 {
            for u in &users_v {
                // The first membership goes round-robin so every flow has members.
                members[(u.id as usize - 1) % flows].insert(u.id);
                for _ in 1..per_user.min(flows) {
                    members[rng.usize(..flows)].insert(u.id);
                }
            }
        }
        let flows_v = members
            .into_iter()
            .enumerate()
            .map(|(i, m)| Flow {
                org: format!("org{}", i / 10 + 1),
                name: format!("flow{}", i + 1),
                members: m.into_iter().collect(),
            })
            .collect();
        let mut pairs = BTreeSet::new();
        if users >= 2 {
            for _ in 0..users {
                let a = rng.u64(1..=users as u64);
                let b = rng.u64(1..=users as u64);
                if a != b {
                    pairs.insert([a.min(b), a.max(b)]);
                }
            }
        }
        Fixture {
            users: users_v,
            flows: flows_v,
            one_to_ones: pairs.into_iter().collect(),
        }
    }

    /// The fixture `serve` uses without `--fixture`: 6 users in 3 flows of 2 organisations,
    /// with fixed tokens that `serve` prints at start.
    pub fn builtin() -> Fixture {
        let user = |id: UserId, name: &str| User {
            id,
            name: name.to_owned(),
            token: format!("demo-token-{name}"),
        };
        let flow = |org: &str, name: &str, members: &[UserId]| Flow {
            org: org.to_owned(),
            name: name.to_owned(),
            members: members.to_vec(),
        };
        Fixture {
            users: vec![
                user(1, "ann"),
                user(2, "bob"),
                user(3, "cat"),
                user(4, "dan"),
                user(5, "eve"),
                user(6, "fay"),
            ],
            flows: vec![
                flow("acme", "main", &[1, 2, 3]),
                flow("acme", "ops", &[1, 4]),
                flow("globex", "lobby", &[5, 6]),
            ],
            one_to_ones: vec![[1, 5], [2, 6]],
        }
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A fixture indexed for the server: users by token and id, flows by path.
pub struct Directory {
    users: Vec<User>,
    by_token: HashMap<String, usize>,
    by_id: HashMap<UserId, usize>,
    flows: Vec<Flow>,
    flow_by_path: HashMap<String, usize>,
    /// Flow indexes of each user.
    memberships: HashMap<UserId, Vec<usize>>,
    /// Open 1-to-1 partners of each user.
    partners: HashMap<UserId, Vec<UserId>>,
}

impl fmt::Debug for Directory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No tokens in Debug output: it may reach a log.
        f.debug_struct("Directory")
            .field("users", &self.users.len())
            .field("flows", &self.flows.len())
            .finish()
    }
}

/// A flow's position in the [`Directory`].
pub type FlowIx = usize;

impl Directory {
    /// Indexes a validated fixture.
    pub fn new(fixture: Fixture) -> Directory {
        let by_token = fixture
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.token.clone(), i))
            .collect();
        let by_id = fixture
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.id, i))
            .collect();
        let flow_by_path = fixture
            .flows
            .iter()
            .enumerate()
            .map(|(i, f)| (f.path(), i))
            .collect();
        let mut memberships: HashMap<UserId, Vec<usize>> = HashMap::new();
        for (i, f) in fixture.flows.iter().enumerate() {
            for m in &f.members {
                let v = memberships.entry(*m).or_default();
                if !v.contains(&i) {
                    v.push(i);
                }
            }
        }
        let mut partners: HashMap<UserId, Vec<UserId>> = HashMap::new();
        for [a, b] in &fixture.one_to_ones {
            for (x, y) in [(a, b), (b, a)] {
                let v = partners.entry(*x).or_default();
                if !v.contains(y) {
                    v.push(*y);
                }
            }
        }
        Directory {
            users: fixture.users,
            by_token,
            by_id,
            flows: fixture.flows,
            flow_by_path,
            memberships,
            partners,
        }
    }

    /// The user a token belongs to.
    pub fn user_by_token(&self, token: &str) -> Option<&User> {
        self.by_token.get(token).map(|&i| &self.users[i])
    }

    /// The user with `id`.
    pub fn user(&self, id: UserId) -> Option<&User> {
        self.by_id.get(&id).map(|&i| &self.users[i])
    }

    /// The flow at `org/name`.
    pub fn flow_by_path(&self, path: &str) -> Option<FlowIx> {
        self.flow_by_path.get(path).copied()
    }

    /// Every flow.
    pub fn flows(&self) -> &[Flow] {
        &self.flows
    }

    /// Every user.
    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// Whether `user` is a member of flow `flow`.
    pub fn is_member(&self, user: UserId, flow: FlowIx) -> bool {
        self.memberships
            .get(&user)
            .is_some_and(|v| v.contains(&flow))
    }

    /// The flows `user` is a member of.
    pub fn memberships(&self, user: UserId) -> &[FlowIx] {
        self.memberships.get(&user).map_or(&[], |v| v.as_slice())
    }

    /// The users `user` has an open 1-to-1 with (what the conversations service answers).
    pub fn partners(&self, user: UserId) -> &[UserId] {
        self.partners.get(&user).map_or(&[], |v| v.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_fixtures_are_valid_and_repeatable() {
        let a = Fixture::generate(200, 12, 7);
        a.validate().unwrap();
        assert_eq!(a, Fixture::generate(200, 12, 7));
        assert_ne!(a, Fixture::generate(200, 12, 8));
        assert!(a.flows.iter().all(|f| !f.members.is_empty()));
        assert!(!a.one_to_ones.is_empty());
        Fixture::builtin().validate().unwrap();
    }

    #[test]
    fn validation_names_the_problem_and_never_the_token() {
        let mut f = Fixture::builtin();
        f.flows[1].members.push(99);
        let e = f.validate().unwrap_err().to_string();
        assert_eq!(e, "flows[1].members: user 99 does not exist in users");

        let mut f = Fixture::builtin();
        f.users[2].token = f.users[0].token.clone();
        let e = f.validate().unwrap_err().to_string();
        assert!(e.contains("users[2] (id 3): token is shared"), "{e}");
        assert!(!e.contains("demo-token"), "{e}");

        let mut f = Fixture::builtin();
        f.flows[0].org = "Acme!".into();
        assert!(matches!(f.validate(), Err(FixtureError::BadName { .. })));

        let mut f = Fixture::builtin();
        f.one_to_ones.push([4, 4]);
        assert!(matches!(
            f.validate(),
            Err(FixtureError::SelfConversation { index: 2, id: 4 })
        ));
    }

    #[test]
    fn directory_answers_memberships_and_partners() {
        let d = Directory::new(Fixture::builtin());
        let ann = d.user_by_token("demo-token-ann").unwrap().id;
        let main = d.flow_by_path("acme/main").unwrap();
        assert!(d.is_member(ann, main));
        assert!(!d.is_member(5, main));
        assert_eq!(d.partners(1), &[5]);
        assert_eq!(d.partners(5), &[1]);
    }
}
