//! Job submissions: checks a submission body against the plugins (the pure checks live in
//! `wasmq_request::submission`, re-exported here) and turns it into a job to store.

use std::sync::Arc;

use serde_json::Value;
pub use wasmq_request::submission::{Invalid, object, priority, valid_email, valid_locale, weight};

use crate::plugins::{Plugin, Registry};
use crate::store::NewJob;

impl wasmq_request::submission::JobTypes for Registry {
    type JobType = Arc<Plugin>;

    fn find(&self, name: &str) -> Option<Arc<Plugin>> {
        self.for_type(name)
    }

    fn names(&self) -> Vec<String> {
        self.job_types()
    }

    fn check_params(plugin: &Arc<Plugin>, params: &Value) -> Result<(), (String, String)> {
        plugin.check_params(params)
    }
}

/// Checks a submission body (JSON) and turns it into a job to store for `tenant`, created by `user`.
pub fn parse(
    body: &[u8],
    tenant: &str,
    user: &str,
    registry: &Registry,
) -> Result<NewJob, Invalid> {
    let s = wasmq_request::submission::parse(body, registry)?;
    Ok(NewJob {
        tenant: tenant.to_string(),
        job_type: s.type_name,
        plugin_name: s.job_type.name.clone(),
        plugin_version: s.job_type.version.clone(),
        plugin_digest: s.job_type.digest().to_string(),
        path: s.path,
        excluded_paths: s.excluded_paths,
        params: s.params,
        priority: s.priority,
        weight: s.weight,
        require_confirmation: s.require_confirmation,
        name: s.name,
        description: s.description,
        created_by: user.to_string(),
        comments: s.comments,
        locale: s.locale,
        submitter_email: s.submitter_email,
        run_at: s.run_at,
        schedule_id: None,
    })
}
