//! A locate step's `s3` table fits its source: an `s3://` glob, or a restic repository
//! on S3 (`s3:...`); never a borg repository nor a local glob.

use super::super::model::{Step, StepKind};
use super::super::spans::Seg;
use super::Validator;
use crate::template::has_template_syntax;

impl Validator<'_> {
    /// Reported at the `s3` key, or at the field of it at fault.
    pub(super) fn locate_s3(&mut self, step: &Step, path: &[Seg<'_>]) {
        let Some(s3) = step.s3.as_ref().filter(|_| step.kind == StepKind::Locate) else {
            return;
        };
        let misfit = if step.borg.is_some() {
            Some((None, "`s3` does not apply to a borg repository".to_string()))
        } else if let Some(restic) = &step.restic {
            let repository = &restic.repository;
            s3.restic_misfit(repository, has_template_syntax(repository))
        } else {
            match step.glob.as_deref() {
                Some(glob) if !glob.starts_with("s3://") && !has_template_syntax(glob) => Some((
                    None,
                    format!("`s3` applies to an `s3://` glob, not `{glob}`"),
                )),
                _ => None,
            }
        };
        let Some((field, message)) = misfit else {
            return;
        };
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
