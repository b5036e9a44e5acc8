//! Kubernetes manifests: a CronJob per drill, or one Indexed Job for a directory of
//! playbooks (completion index N runs playbook N). The playbooks come from a ConfigMap,
//! the secrets from a Secret (its keys become environment variables), the records and
//! reports go to a volume (a PersistentVolumeClaim shared by every drill).

use super::{Every, k8s_name};

/// A drill as the pod sees it: its name and its playbook's file name in the ConfigMap.
pub struct InCluster {
    pub name: String,
    pub file: String,
}

/// The claim every drill writes its records to, one folder per drill.
const ARTIFACTS_CLAIM: &str = "restore-drill-artifacts";

/// A YAML double-quoted string.
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// `text` with every line indented by `n` spaces.
fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines()
        .map(|l| match l.is_empty() {
            true => String::new(),
            false => format!("{pad}{l}\n"),
        })
        .collect()
}

/// The pod template: non-root, the playbooks read-only, the artifacts volume, a scratch
/// work directory; `run` is the container's `command`/`args` lines.
fn pod(labels: &str, config: &str, secret: &str, image: &str, run: &str) -> String {
    format!(
        "metadata:
  labels:
{labels}spec:
  restartPolicy: Never
  securityContext:
    runAsNonRoot: true
    runAsUser: 10001
    runAsGroup: 10001
    fsGroup: 10001
  containers:
    - name: restore-drill
      image: {image}
{run}      envFrom:
        - secretRef:
            name: {secret}
      env:
        - name: TMPDIR
          value: /work
      resources:
        requests:
          cpu: 500m
          memory: 512Mi
        limits:
          memory: 2Gi
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities:
          drop: [\"ALL\"]
      volumeMounts:
        - name: playbooks
          mountPath: /drills
          readOnly: true
        - name: artifacts
          mountPath: /artifacts
        - name: work
          mountPath: /work
  volumes:
    - name: playbooks
      configMap:
        name: {config}
    - name: artifacts
      persistentVolumeClaim:
        claimName: {ARTIFACTS_CLAIM}
    - name: work
      emptyDir: {{}}
",
        labels = indent(labels, 4),
        image = q(image),
    )
}

fn labels(drill: &str) -> String {
    format!(
        "app.kubernetes.io/name: restore-drill\nrestore-drill/drill: {}\n",
        q(drill)
    )
}

/// A CronJob running `drill` on `every`: never two at once (`concurrencyPolicy:
/// Forbid`), no retry of a failed drill (its record says why), old jobs kept a while.
pub fn cron_job(drill: &InCluster, every: &Every, image: &str) -> String {
    let name = k8s_name("restore-drill-", &drill.name, 52);
    let run = format!(
        "      args: [\"run\", {}, \"--artifacts\", {}, \"--quiet\"]\n",
        q(&format!("/drills/{}", drill.file)),
        q(&format!("/artifacts/{}", drill.name)),
    );
    let pod = pod(&labels(&drill.name), &name, &name, image, &run);
    format!(
        "# restore drill {drill}, {label}. Before applying:
#   kubectl create configmap {name} --from-file={file}
#   kubectl create secret generic {name} --from-env-file=<KEY=VALUE file of its secrets>
#   a PersistentVolumeClaim named {ARTIFACTS_CLAIM} (records: /artifacts/{drill}/)
apiVersion: batch/v1
kind: CronJob
metadata:
  name: {name}
  labels:
{labels}spec:
  schedule: {schedule}
  concurrencyPolicy: Forbid
  startingDeadlineSeconds: 3600
  successfulJobsHistoryLimit: 3
  failedJobsHistoryLimit: 3
  jobTemplate:
    spec:
      backoffLimit: 0
      activeDeadlineSeconds: 43200
      template:
{pod}",
        drill = drill.name,
        file = drill.file,
        label = every.label,
        labels = indent(&labels(&drill.name), 4),
        schedule = q(&every.cron),
        pod = indent(&pod, 8),
    )
}

/// One Indexed Job running every drill of `drills` (index N: drill N), at most
/// `parallelism` at once; a failed drill fails its index only.
pub fn indexed_job(drills: &[InCluster], image: &str, parallelism: usize) -> String {
    let name = "restore-drill-fleet";
    let mut script = String::from("case \"$JOB_COMPLETION_INDEX\" in\n");
    for (i, d) in drills.iter().enumerate() {
        let file = crate::fmt::shell_word(&format!("/drills/{}", d.file));
        let dir = crate::fmt::shell_word(&format!("/artifacts/{}", d.name));
        script.push_str(&format!("  {i}) set -- {file} {dir} ;;\n"));
    }
    script.push_str(
        "  *) echo \"no drill for index $JOB_COMPLETION_INDEX\" >&2; exit 2 ;;\nesac\n\
         exec restore-drill run \"$1\" --artifacts \"$2\" --quiet\n",
    );
    let run = format!(
        "      command: [\"/bin/sh\", \"-c\"]\n      args:\n        - |\n{}",
        indent(&script, 10)
    );
    let pod = pod(&labels("fleet"), name, name, image, &run);
    format!(
        "# {n} restore drills, one per completion index, {p} at a time. Before applying:
#   kubectl create configmap {name} --from-file=<the playbooks' directory>
#   kubectl create secret generic {name} --from-env-file=<KEY=VALUE file of all their secrets>
#   a PersistentVolumeClaim named {ARTIFACTS_CLAIM} (records: /artifacts/<drill>/)
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
  labels:
{labels}spec:
  completionMode: Indexed
  completions: {n}
  parallelism: {p}
  backoffLimitPerIndex: 0
  activeDeadlineSeconds: 86400
  template:
{pod}",
        n = drills.len(),
        p = parallelism.clamp(1, drills.len().max(1)),
        labels = indent(&labels("fleet"), 4),
        pod = indent(&pod, 4),
    )
}
