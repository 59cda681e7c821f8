//! An import's lifecycle as one state machine: every observation (a webhook, a worker
//! callback, a look at Harbor's execution) goes through [`ImportState::advance`], so
//! "progress never goes backwards" and "a terminal state is final" hold in one place.

use serde_json::{Map, Value, json};

/// Where an import is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Accepted, Harbor not yet told.
    Pending,
    /// Harbor's execution is running.
    Running,
    Succeeded,
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Running => "running",
            Phase::Succeeded => "succeeded",
            Phase::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        [
            Phase::Pending,
            Phase::Running,
            Phase::Succeeded,
            Phase::Failed,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }

    fn rank(self) -> u8 {
        match self {
            Phase::Pending => 0,
            Phase::Running => 1,
            Phase::Succeeded | Phase::Failed => 2,
        }
    }
}

/// An import's state as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportState {
    pub phase: Phase,
    /// 0..=100.
    pub progress: i64,
    /// `{layer: {status, progress}}` as workers report it.
    pub layers: Map<String, Value>,
}

/// Something learned about an import.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// Work is under way, `progress` percent done (if known).
    Running {
        progress: Option<i64>,
    },
    /// Per-layer progress from a worker callback.
    Layers(Map<String, Value>),
    Succeeded,
    Failed,
}

impl ImportState {
    pub fn new() -> ImportState {
        ImportState {
            phase: Phase::Pending,
            progress: 0,
            layers: Map::new(),
        }
    }

    /// The state after `observation`, or `None` when it changes nothing (a duplicate, a late
    /// or out-of-order event, anything after a terminal state).
    pub fn advance(&self, observation: &Observation) -> Option<ImportState> {
        if self.phase.is_terminal() {
            return None;
        }
        let mut next = self.clone();
        match observation {
            Observation::Running { progress } => {
                next.phase = Phase::Running;
                if let Some(p) = progress {
                    next.progress = next.progress.max((*p).clamp(0, 99));
                }
            }
            Observation::Layers(layers) => {
                if next.phase.rank() < Phase::Running.rank() {
                    next.phase = Phase::Running;
                }
                for (layer, report) in layers {
                    let merged = merge_layer(next.layers.get(layer), report);
                    next.layers.insert(layer.clone(), merged);
                }
                next.progress = next.progress.max(overall_progress(&next.layers).min(99));
            }
            Observation::Succeeded => {
                next.phase = Phase::Succeeded;
                next.progress = 100;
                for report in next.layers.values_mut() {
                    *report = merge_layer(Some(&*report), &json!({"status": "completed"}));
                }
            }
            Observation::Failed => next.phase = Phase::Failed,
        }
        (next != *self).then_some(next)
    }
}

impl Default for ImportState {
    fn default() -> Self {
        ImportState::new()
    }
}

fn layer_progress(v: Option<&Value>) -> i64 {
    v.and_then(|r| r.get("progress"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
        .clamp(0, 100)
}

/// One layer's report merged into what we had: its progress never decreases, and a
/// completed layer stays completed.
fn merge_layer(old: Option<&Value>, new: &Value) -> Value {
    let old_progress = layer_progress(old);
    let new_progress = layer_progress(Some(new));
    let old_status = old.and_then(|o| o.get("status")).and_then(Value::as_str);
    let new_status = new
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("downloading");
    let completed = old_status == Some("completed") || new_status == "completed";
    let progress = if completed {
        100
    } else {
        old_progress.max(new_progress)
    };
    let status = if completed {
        "completed"
    } else if new_progress >= old_progress {
        new_status
    } else {
        old_status.unwrap_or(new_status)
    };
    // What else is known of the layer (its digest, size, media type, platform) is kept.
    let mut merged = old.and_then(Value::as_object).cloned().unwrap_or_default();
    if let Some(extra) = new.as_object() {
        merged.extend(extra.clone());
    }
    merged.insert("status".into(), json!(status));
    merged.insert("progress".into(), json!(progress));
    Value::Object(merged)
}

/// The mean of the layers' progress.
fn overall_progress(layers: &Map<String, Value>) -> i64 {
    if layers.is_empty() {
        return 0;
    }
    let sum: i64 = layers.values().map(|v| layer_progress(Some(v))).sum();
    sum / layers.len() as i64
}

/// Checks a worker's progress body: a JSON object of `{layer: {status, progress}}`.
pub fn parse_layers(body: &Value) -> Result<Map<String, Value>, String> {
    let object = body
        .as_object()
        .ok_or("the body must be a JSON object of layers")?;
    let mut out = Map::new();
    for (layer, report) in object {
        if layer.is_empty() || layer.len() > 256 {
            return Err(format!("layer name '{layer}' must be 1 to 256 characters"));
        }
        let report = report.as_object().ok_or(format!(
            "layer '{layer}' must be an object {{status, progress}}"
        ))?;
        let status = match report.get("status") {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => s.clone(),
            None => "downloading".to_owned(),
            _ => return Err(format!("layer '{layer}': status must be a short string")),
        };
        let progress = match report.get("progress") {
            Some(p) => p.as_i64().filter(|p| (0..=100).contains(p)).ok_or(format!(
                "layer '{layer}': progress must be an integer from 0 to 100"
            ))?,
            None => 0,
        };
        out.insert(
            layer.clone(),
            json!({"status": status, "progress": progress}),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(v: Value) -> Map<String, Value> {
        parse_layers(&v).unwrap()
    }

    #[test]
    fn progress_never_goes_backwards() {
        let s = ImportState::new();
        let s = s
            .advance(&Observation::Layers(layers(
                json!({"l1": {"status": "downloading", "progress": 60}}),
            )))
            .unwrap();
        assert_eq!((s.phase, s.progress), (Phase::Running, 60));
        // A late, older report changes nothing.
        assert_eq!(
            s.advance(&Observation::Layers(layers(
                json!({"l1": {"status": "downloading", "progress": 40}})
            ))),
            None
        );
        assert_eq!(
            s.advance(&Observation::Running { progress: Some(10) }),
            None
        );
        let s = s
            .advance(&Observation::Layers(layers(
                json!({"l2": {"status": "downloading", "progress": 20}}),
            )))
            .unwrap();
        assert_eq!(
            s.progress, 60,
            "the mean fell to 40, the import's progress did not"
        );
        assert_eq!(s.layers["l1"]["progress"], 60);
    }

    #[test]
    fn terminal_states_are_final_and_duplicates_change_nothing() {
        let running = ImportState::new()
            .advance(&Observation::Running { progress: None })
            .unwrap();
        assert_eq!(
            running.advance(&Observation::Running { progress: None }),
            None
        );
        let done = running.advance(&Observation::Succeeded).unwrap();
        assert_eq!((done.phase, done.progress), (Phase::Succeeded, 100));
        assert_eq!(done.advance(&Observation::Failed), None);
        assert_eq!(done.advance(&Observation::Succeeded), None);
        let failed = running.advance(&Observation::Failed).unwrap();
        assert_eq!(failed.advance(&Observation::Succeeded), None);
    }

    #[test]
    fn completed_layers_stay_completed() {
        let s = ImportState::new()
            .advance(&Observation::Layers(layers(
                json!({"l1": {"status": "completed", "progress": 100}}),
            )))
            .unwrap();
        assert_eq!(
            s.advance(&Observation::Layers(layers(
                json!({"l1": {"status": "downloading", "progress": 5}})
            ))),
            None
        );
        let done = s.advance(&Observation::Succeeded).unwrap();
        assert_eq!(
            done.layers["l1"],
            json!({"status": "completed", "progress": 100})
        );
    }

    #[test]
    fn running_progress_stays_below_100_until_success() {
        let s = ImportState::new()
            .advance(&Observation::Running {
                progress: Some(250),
            })
            .unwrap();
        assert_eq!(s.progress, 99);
    }

    #[test]
    fn worker_bodies_are_validated() {
        assert!(parse_layers(&json!([1])).is_err());
        assert!(parse_layers(&json!({"l": 5})).is_err());
        assert!(
            parse_layers(&json!({"l": {"progress": 101}}))
                .unwrap_err()
                .contains("0 to 100")
        );
        assert!(parse_layers(&json!({"l": {"progress": "x"}})).is_err());
        assert!(parse_layers(&json!({"l": {"status": 3}})).is_err());
        assert_eq!(
            parse_layers(&json!({"l": {}})).unwrap()["l"],
            json!({"status": "downloading", "progress": 0})
        );
    }

    #[test]
    fn a_layers_facts_survive_progress_and_completion() {
        let s = ImportState::new();
        let facts = json!({"status": "downloading", "progress": 40, "digest": "sha256:aa", "size": 7, "mediaType": "m"});
        let s = s
            .advance(&Observation::Layers(
                [("sha256:aa".to_string(), facts)].into_iter().collect(),
            ))
            .unwrap();
        let s = s.advance(&Observation::Succeeded).unwrap();
        let layer = &s.layers["sha256:aa"];
        assert_eq!(layer["status"], "completed");
        assert_eq!(layer["progress"], 100);
        assert_eq!(
            (layer["digest"].as_str(), layer["size"].as_i64()),
            (Some("sha256:aa"), Some(7))
        );
    }
}
