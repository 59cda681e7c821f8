//! A Harbor simulator per test, running on its own tokio runtime.

use std::time::Duration;

pub use harbor_sim::{
    ApiErrorFault, FaultsPatch, ScanSpec, SimOptions, SimState, Simulator, UpstreamFailure,
    UpstreamImage, WebhookFaultsPatch,
};

pub const USERNAME: &str = "robot$berth";
pub const PASSWORD: &str = "robot-secret";

pub struct TestHarbor {
    pub sim: Simulator,
    _runtime: tokio::runtime::Runtime,
}

impl TestHarbor {
    /// A simulator whose executions take ~`step` per phase. Like the demo Harbor, it holds
    /// the catalog's official images.
    pub fn start_with(step: Duration) -> TestHarbor {
        TestHarbor::start_options(step, harbor_sim::official_images())
    }

    /// A simulator whose one account is a system robot (never a system admin).
    pub fn start_robot() -> TestHarbor {
        TestHarbor::start_configured(Duration::from_millis(150), Vec::new(), |o| o.robot = true)
    }

    fn start_options(step: Duration, seed_images: Vec<harbor_sim::SeedImage>) -> TestHarbor {
        TestHarbor::start_configured(step, seed_images, |_| {})
    }

    /// A simulator without image contents: plain configs, no registry API.
    pub fn start_without_image_contents() -> TestHarbor {
        TestHarbor::start_configured(
            Duration::from_millis(150),
            harbor_sim::official_images(),
            |o| o.image_contents = false,
        )
    }

    fn start_configured(
        step: Duration,
        seed_images: Vec<harbor_sim::SeedImage>,
        configure: impl FnOnce(&mut SimOptions),
    ) -> TestHarbor {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let opts = SimOptions {
            username: USERNAME.into(),
            password: PASSWORD.into(),
            external_host: "harbor.test".into(),
            execution_step: step,
            runner_pulls_bases: !seed_images.is_empty(),
            seed_images,
            ..SimOptions::default()
        };
        let mut opts = opts;
        configure(&mut opts);
        let sim = runtime
            .block_on(Simulator::start("127.0.0.1:0".parse().unwrap(), opts))
            .expect("start harbor-sim");
        TestHarbor {
            sim,
            _runtime: runtime,
        }
    }

    pub fn start() -> TestHarbor {
        TestHarbor::start_with(Duration::from_millis(150))
    }

    /// A simulator holding only `images` from the start.
    pub fn start_holding(images: Vec<harbor_sim::SeedImage>) -> TestHarbor {
        TestHarbor::start_options(Duration::from_millis(150), images)
    }

    pub fn url(&self) -> String {
        self.sim.url()
    }

    pub fn state(&self) -> SimState {
        self.sim.state()
    }

    pub fn faults(&self, patch: FaultsPatch) {
        self.sim.set_faults(patch);
    }

    /// Harbor records its webhooks but delivers none.
    pub fn drop_webhooks(&self) {
        self.faults(FaultsPatch {
            webhooks: Some(WebhookFaultsPatch {
                drop: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        });
    }

    /// Sets what Harbor's scans find; with a repository and reference, scans it now.
    pub fn scan(&self, spec: ScanSpec) -> u16 {
        let _runtime = self._runtime.enter();
        self.sim.scan(spec)
    }

    pub fn upstream(&self, image: UpstreamImage) {
        self.sim.define_upstream(image);
    }

    /// The `SPIN_VARIABLE_*` values that point berth at this simulator.
    pub fn variables(&self) -> Vec<(String, String)> {
        [
            ("harbor_url", self.url()),
            ("harbor_username", USERNAME.into()),
            ("harbor_password", PASSWORD.into()),
            ("harbor_project", "catalog".into()),
            ("runner_url", self.url()),
            ("runner_secret", SimOptions::default().runner_secret),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}
