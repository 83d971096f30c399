//! The Kubernetes example deploys as written (issue #21): its ConfigMap's
//! jobs.yaml passes `check` in the layout its volumes mount, and the
//! manifest names only what the Dockerfile builds.

use std::path::Path;

use serde::Deserialize;
use serde_yaml::Value;

use crate::common::Project;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn documents() -> Vec<Value> {
    let text = std::fs::read_to_string(root().join("deploy/kubernetes.yaml")).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).expect("the manifest parses"))
        .collect()
}

fn kind<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    documents
        .iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("the manifest has a {kind}"))
}

fn litewarden_container(deployment: &Value) -> &Value {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str() == Some("litewarden"))
        .expect("a litewarden container")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn the_configmaps_jobs_yaml_passes_check_in_the_layout_the_volumes_mount() {
    let documents = documents();
    let jobs = kind(&documents, "ConfigMap")["data"]["jobs.yaml"]
        .as_str()
        .expect("jobs.yaml in the ConfigMap");
    let project = Project::new();
    let mounted = |path: &str| project.join(path.trim_start_matches('/'));
    for dir in ["data", "backups", "etc/litewarden"] {
        std::fs::create_dir_all(mounted(dir)).unwrap();
    }
    copy_dir(&root().join("migrations"), &mounted("migrations"));
    let prefix = project.path().display().to_string();
    let relocated = jobs
        .replace(" /data/", &format!(" {prefix}/data/"))
        .replace(" /backups", &format!(" {prefix}/backups"))
        .replace(" /migrations/", &format!(" {prefix}/migrations/"));
    std::fs::write(mounted("etc/litewarden/jobs.yaml"), relocated).unwrap();
    let check = project.run(&["-c", "etc/litewarden/jobs.yaml", "check"]);
    assert_eq!(check.code, 0, "{check:?}");
}

#[test]
fn the_manifest_names_only_what_the_dockerfile_builds_and_probes_the_listener() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let documents = documents();
    let deployment = kind(&documents, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = litewarden_container(deployment);

    let tag = container["image"].as_str().unwrap();
    assert!(
        dockerfile.contains(&format!("docker build -t {tag} .")),
        "the Dockerfile builds {tag}"
    );
    assert!(dockerfile.contains("ENTRYPOINT [\"/usr/local/bin/litewarden\"]"));
    assert!(dockerfile.contains("COPY migrations /migrations"));
    let jobs = kind(&documents, "ConfigMap")["data"]["jobs.yaml"]
        .as_str()
        .unwrap();
    for dir in jobs
        .split("{ dir: ")
        .skip(1)
        .map(|rest| rest.split([' ', '}', ',']).next().unwrap())
    {
        let in_repo = dir
            .strip_prefix("/migrations/")
            .expect("migrations come from the image");
        assert!(
            root().join("migrations").join(in_repo).is_dir(),
            "{dir} is in the image"
        );
    }

    let uid = pod["securityContext"]["runAsUser"].as_u64().unwrap();
    assert!(
        dockerfile.contains(&format!("USER {uid}:")),
        "the pod runs as the image's user"
    );
    assert!(pod["securityContext"]["fsGroup"].as_u64().is_some());

    let volumes: Vec<&str> = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for mount in container["volumeMounts"].as_sequence().unwrap() {
        assert!(
            volumes.contains(&mount["name"].as_str().unwrap()),
            "{mount:?} has a volume"
        );
    }
    for volume in pod["volumes"].as_sequence().unwrap() {
        if let Some(map) = volume["configMap"]["name"].as_str() {
            assert!(
                documents
                    .iter()
                    .any(|d| d["kind"].as_str() == Some("ConfigMap")
                        && d["metadata"]["name"].as_str() == Some(map)),
                "ConfigMap {map} is in the manifest"
            );
        }
    }
    let config = container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str() == Some("LITEWARDEN_CONFIG"))
        .and_then(|e| e["value"].as_str())
        .unwrap();
    assert_eq!(config, "/etc/litewarden/jobs.yaml");

    let port = jobs
        .split("listen: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|listen| listen.rsplit(':').next())
        .and_then(|port| port.parse::<u64>().ok())
        .expect("the ConfigMap sets listen");
    let ports = container["ports"].as_sequence().unwrap();
    assert!(
        ports
            .iter()
            .any(|p| p["containerPort"].as_u64() == Some(port))
    );
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(
            container[probe]["httpGet"]["path"].as_str(),
            Some("/healthz"),
            "{probe}"
        );
    }
    assert!(
        container["resources"]["requests"]["memory"]
            .as_str()
            .is_some()
    );

    let args: Vec<&str> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let help = std::process::Command::new(crate::common::binary())
        .args(&args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        help.status.success(),
        "the container's args parse: {args:?}"
    );
}
