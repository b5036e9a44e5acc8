//! What a drill creates outside its work directory (services, clusters, scratch
//! databases), each with the action that removes it. Steps register a resource the
//! moment it exists, so teardown happens even when the step fails halfway or the drill
//! is interrupted; the runner tears down services before the cleanup steps (they may drop what the
//! application holds open) and everything else after them, newest first.

use std::sync::{Arc, Mutex};

type Teardown = Box<dyn FnOnce() -> anyhow::Result<()> + Send>;

struct Resource {
    kind: String,
    id: String,
    step: String,
    teardown: Option<Teardown>,
}

/// Shared between the runner and the steps' worker threads.
#[derive(Clone, Default)]
pub struct Resources {
    inner: Arc<Mutex<Vec<Resource>>>,
}

/// How the teardown of one resource went.
pub struct TornDown {
    pub kind: String,
    pub id: String,
    pub step: String,
    pub result: anyhow::Result<()>,
}

impl Resources {
    /// Records a resource (`kind`: `service`, `cluster`, `database`, ...; `id`: a pid, a
    /// path, a url without password) and how to remove it.
    pub fn register(
        &self,
        kind: &str,
        id: &str,
        step: &str,
        teardown: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
    ) {
        self.inner.lock().unwrap().push(Resource {
            kind: kind.into(),
            id: id.into(),
            step: step.into(),
            teardown: Some(Box::new(teardown)),
        });
    }

    /// Removes the resources whose kind matches, newest first.
    pub fn tear_down_where(&self, kind: impl Fn(&str) -> bool) -> Vec<TornDown> {
        let taken: Vec<Resource> = {
            let mut all = self.inner.lock().unwrap();
            let (matching, rest) = std::mem::take(&mut *all)
                .into_iter()
                .partition(|r| kind(&r.kind));
            *all = rest;
            matching
        };
        taken
            .into_iter()
            .rev()
            .map(|mut r| TornDown {
                result: r.teardown.take().map_or(Ok(()), |f| f()),
                kind: r.kind,
                id: r.id,
                step: r.step,
            })
            .collect()
    }

    /// What is registered and not yet torn down (kind, id, step).
    pub fn pending(&self) -> Vec<(String, String, String)> {
        self.inner
            .lock()
            .unwrap()
            .iter()
            .map(|r| (r.kind.clone(), r.id.clone(), r.step.clone()))
            .collect()
    }
}
