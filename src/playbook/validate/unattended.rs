//! `[notify]` and `[evidence]`: rendered before the run starts, with vars, env, drill and
//! secrets; their names are checked like a step's, and the notification timeout parsed.

use super::super::spans::Seg;
use super::{Scope, Validator};

impl<'a> Validator<'a> {
    pub(super) fn unattended(&mut self) {
        let (vars, secrets) = (self.var_names(), self.secret_names());
        let none = Default::default();
        let scope = Scope {
            roots: &["vars", "env", "drill", "secrets"],
            earlier: &none,
            all: &none,
            vars: &vars,
            secrets: &secrets,
        };
        let (notify, evidence) = (&self.pb.notify, &self.pb.evidence);
        let key = |path: &[&'a str]| path.iter().map(|k| Seg::Key(k)).collect::<Vec<_>>();
        let optional = [
            (["notify", "healthchecks"], &notify.healthchecks),
            (["notify", "ntfy"], &notify.ntfy),
            (["evidence", "sign_key"], &evidence.sign_key),
            (
                ["evidence", "sign_key_password"],
                &evidence.sign_key_password,
            ),
        ];
        let mut fields: Vec<(Vec<Seg<'a>>, &'a str)> = Vec::new();
        for (path, src) in optional {
            if let Some(src) = src {
                fields.push((key(&path), src));
            }
        }
        if let Some(hook) = &notify.webhook {
            fields.push((key(&["notify", "webhook", "url"]), &hook.url));
            for (name, value) in &hook.headers {
                fields.push((key(&["notify", "webhook", "headers", name]), value));
            }
        }
        for (path, src) in fields {
            self.template(src, false, &scope, &path);
        }
        let channels = [
            notify.healthchecks.is_some(),
            notify.webhook.is_some(),
            notify.ntfy.is_some(),
        ];
        if !channels.contains(&true)
            && let Some(span) = self.spans.key(&[Seg::Key("notify")])
        {
            self.error(
                "[notify] names no channel: nothing would be sent",
                Some(span),
            )
            .help = Some("set `healthchecks`, `webhook` or `ntfy`".into());
        }
        if let Some(timeout) = &notify.timeout {
            self.duration(timeout, &[Seg::Key("notify"), Seg::Key("timeout")]);
        }
    }
}
