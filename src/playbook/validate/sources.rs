//! A locate step's `s3` table fits its source: an `s3://` glob, or a restic repository
//! on S3 (`s3:...`); never a borg repository nor a local glob. A locate's `pick` and a
//! copy's `to`, when written out, are what the step takes.

use super::super::model::{Step, StepKind};
use super::super::spans::Seg;
use super::Validator;
use crate::template::has_template_syntax;

/// What a locate's `pick` may be.
const PICKS: &[&str] = &["newest", "oldest", "random"];

impl Validator<'_> {
    /// A written-out `pick` or `to` the step would refuse is refused here, at the field,
    /// not once the steps before it have run (a template is known only then).
    pub(super) fn locate_pick_copy_to(&mut self, step: &Step, path: &[Seg<'_>]) {
        let written = |v: &Option<String>| v.clone().filter(|v| !has_template_syntax(v));
        let pick = written(&step.pick).filter(|_| step.kind == StepKind::Locate);
        if let Some(given) = pick.filter(|p| !PICKS.contains(&p.as_str())) {
            let span = self.spans.value(&[path, &[Seg::Key("pick")]].concat());
            let help = match super::super::closest(&given, PICKS) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "`newest` (the default), `oldest` or `random`".into(),
            };
            let message = format!("`pick` must be newest, oldest or random, not `{given}`");
            self.error(message, span).help = Some(help);
        }
        let to = written(&step.to).filter(|_| step.kind == StepKind::Copy);
        if let Some(to) = to.filter(|t| !t.starts_with("s3://")) {
            let span = self.spans.value(&[path, &[Seg::Key("to")]].concat());
            self.error(format!("`to` must be an s3:// url, not `{to}`"), span)
                .help = Some("a copy uploads to `s3://bucket/prefix/`".into());
        }
    }

    /// Reported at the `s3` key, or at the field of it at fault.
    pub(super) fn locate_s3(&mut self, step: &Step, path: &[Seg<'_>]) {
        let Some(s3) = step.s3.as_ref().filter(|_| step.kind == StepKind::Locate) else {
            return;
        };
        let misfits = if step.borg.is_some() {
            vec![(None, "`s3` does not apply to a borg repository".to_string())]
        } else if let Some(restic) = &step.restic {
            let repository = &restic.repository;
            s3.restic_misfits(repository, has_template_syntax(repository))
        } else {
            match step.glob.as_deref() {
                Some(glob) if !glob.starts_with("s3://") && !has_template_syntax(glob) => {
                    vec![(
                        None,
                        format!("`s3` applies to an `s3://` glob, not `{glob}`"),
                    )]
                }
                _ => Vec::new(),
            }
        };
        for (field, message) in misfits {
            let span = match field {
                Some(field) => self
                    .spans
                    .value(&[path, &[Seg::Key("s3"), Seg::Key(field)]].concat()),
                None => self.spans.key(&[path, &[Seg::Key("s3")]].concat()),
            };
            self.error(message, span).help = Some(match &step.restic {
                Some(_) => "for a restic `s3:` repository, `s3` takes `access_key`, `secret_key`, `region` and `path_style`".into(),
                None => "`s3` is for an `s3://` glob or a restic `s3:` repository".into(),
            });
        }
    }
}
