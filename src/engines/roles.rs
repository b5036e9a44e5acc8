//! `roles_exist` on every engine that has roles (PostgreSQL roles, MySQL users): each
//! role is looked up once, then each grant of the roles that exist.

use indexmap::IndexMap;

/// What an engine answers about its roles.
pub trait Roles {
    /// What the engine calls a role (`role`, `user`).
    fn noun(&self) -> &'static str;
    /// Why a role that exists cannot log in (`NOLOGIN`, locked): None when it can, and
    /// None as a whole when the role does not exist.
    fn login(&mut self, role: &str) -> anyhow::Result<Option<Option<&'static str>>>;
    /// Whether `role` holds the grant (Err: why it cannot be told).
    fn holds(&mut self, role: &str, grant: &Grant) -> anyhow::Result<Result<bool, String>>;
}

/// Each of `roles` that does not exist or cannot log in, each role of `grants` that does
/// not exist, and each grant (`PRIVILEGE:table`) of the others that does not hold.
pub fn role_problems(
    r: &mut dyn Roles,
    roles: &[String],
    grants: &IndexMap<String, Vec<String>>,
) -> anyhow::Result<Vec<String>> {
    let noun = r.noun();
    let mut problems = Vec::new();
    let mut missing: Vec<&String> = Vec::new();
    let mut seen: Vec<&String> = Vec::new();
    for role in roles.iter().chain(grants.keys()) {
        if seen.contains(&role) {
            continue;
        }
        seen.push(role);
        match r.login(role)? {
            None => {
                problems.push(format!("{noun} {role} does not exist"));
                missing.push(role);
            }
            Some(Some(why)) if roles.contains(role) => {
                problems.push(format!("{noun} {role} exists but cannot log in ({why})"))
            }
            Some(_) => {}
        }
    }
    for (role, wanted) in grants.iter().filter(|(r, _)| !missing.contains(r)) {
        for grant in wanted {
            let g = Grant::parse(grant)?;
            let (privilege, table) = (&g.privilege, &g.table);
            match r.holds(role, &g)? {
                Ok(true) => {}
                Ok(false) => problems.push(format!("{noun} {role} lacks {privilege} on {table}")),
                Err(why) => problems.push(format!(
                    "{noun} {role}: cannot check {privilege} on {table}: {why}"
                )),
            }
        }
    }
    Ok(problems)
}

/// A privilege on a table: `SELECT:orders`.
pub struct Grant {
    pub privilege: String,
    pub table: String,
}

impl Grant {
    pub fn parse(grant: &str) -> anyhow::Result<Self> {
        match grant.split_once(':') {
            Some((p, t)) if !p.trim().is_empty() && !t.trim().is_empty() => Ok(Self {
                privilege: p.trim().to_uppercase(),
                table: t.trim().to_string(),
            }),
            _ => anyhow::bail!(
                "grant `{grant}` is not `PRIVILEGE:table` (such as \"SELECT:orders\")"
            ),
        }
    }
}
