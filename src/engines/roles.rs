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
/// not exist, and each grant (`PRIVILEGE:table`) of the others that does not hold. Err
/// when there is nothing to check or a grant cannot be read.
pub fn role_problems(
    r: &mut dyn Roles,
    roles: &[String],
    grants: &IndexMap<String, Vec<String>>,
) -> anyhow::Result<Vec<String>> {
    anyhow::ensure!(
        !roles.is_empty() || !grants.is_empty(),
        "needs `roles` or `grants`"
    );
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Roles as a table: name -> (why it cannot log in, the grants it holds). A grant on
    /// the table `secret` cannot be told.
    struct Table(Vec<(&'static str, Option<&'static str>, &'static [&'static str])>);

    impl Roles for Table {
        fn noun(&self) -> &'static str {
            "role"
        }
        fn login(&mut self, role: &str) -> anyhow::Result<Option<Option<&'static str>>> {
            Ok(self.0.iter().find(|r| r.0 == role).map(|r| r.1))
        }
        fn holds(&mut self, role: &str, grant: &Grant) -> anyhow::Result<Result<bool, String>> {
            if grant.table == "secret" {
                return Ok(Err("no such table".into()));
            }
            let held = format!("{}:{}", grant.privilege, grant.table);
            let r = self
                .0
                .iter()
                .find(|r| r.0 == role)
                .expect("looked up first");
            Ok(Ok(r.2.contains(&held.as_str())))
        }
    }

    fn problems(roles: &[&str], grants: &[(&str, &[&str])]) -> Vec<String> {
        let mut table = Table(vec![
            ("app", None, &["SELECT:orders", "INSERT:orders"]),
            ("report", Some("NOLOGIN"), &["SELECT:orders"]),
        ]);
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        let grants = grants
            .iter()
            .map(|(r, g)| (r.to_string(), g.iter().map(|g| g.to_string()).collect()))
            .collect();
        role_problems(&mut table, &roles, &grants).unwrap()
    }

    #[test]
    fn roles_that_exist_log_in_and_hold_their_grants_have_no_problem() {
        assert!(problems(&["app"], &[("app", &["select:orders", "INSERT:orders"])]).is_empty());
        // A role named only for its grants need not log in (a group role).
        assert!(problems(&[], &[("report", &["SELECT:orders"])]).is_empty());
    }

    #[test]
    fn each_missing_role_locked_role_and_missing_grant_is_named_once() {
        let found = problems(
            &["app", "ghost", "report", "app"],
            &[
                ("app", &["DELETE:orders", "SELECT:secret"]),
                ("ghost", &["SELECT:orders"]),
            ],
        );
        assert_eq!(
            found,
            [
                "role ghost does not exist",
                "role report exists but cannot log in (NOLOGIN)",
                "role app lacks DELETE on orders",
                "role app: cannot check SELECT on secret: no such table",
            ]
        );
    }

    #[test]
    fn a_grant_that_is_not_privilege_colon_table_is_an_error() {
        for bad in [
            "SELECT orders",
            "SELECT:",
            ":orders",
            " :orders",
            "SELECT: ",
        ] {
            let mut table = Table(vec![("app", None, &[])]);
            let grants = [("app".to_string(), vec![bad.to_string()])].into();
            let e = role_problems(&mut table, &[], &grants)
                .unwrap_err()
                .to_string();
            assert!(e.contains("is not `PRIVILEGE:table`"), "{bad}: {e}");
        }
    }

    #[test]
    fn nothing_to_check_is_an_error_and_roles_or_grants_alone_are_enough() {
        let mut table = Table(vec![("app", None, &["SELECT:orders"])]);
        let none = IndexMap::new();
        let e = role_problems(&mut table, &[], &none)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "needs `roles` or `grants`");
        assert!(
            role_problems(&mut table, &["app".into()], &none)
                .unwrap()
                .is_empty()
        );
        let grants = [("app".to_string(), vec!["SELECT:orders".to_string()])].into();
        assert!(role_problems(&mut table, &[], &grants).unwrap().is_empty());
    }
}
