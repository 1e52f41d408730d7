//! Tearing the compose project down, whatever happens: after a pass, after a failed phase
//! (a guard's drop, [`testkit::guard`]), also while a panic unwinds, and on Ctrl-C (which ends
//! the process before any drop runs, so it has its own handler). A run that leaves containers,
//! a network or a volume behind would make the next run, or the user's own `docker compose up`,
//! start from a state nobody chose.

use super::PROJECT;
use super::docker::Project;
use anyhow::ensure;
use testkit::Guard;

/// Tears the project down when dropped, unless [`Teardown::finish`] did it first.
pub struct Teardown {
    project: Project,
    guard: Guard<Box<dyn FnOnce()>>,
}

impl Teardown {
    /// From now on the project comes down on every path. Also removes whatever an earlier,
    /// interrupted run left, so the run starts from nothing.
    pub fn arm(project: &Project, runtime: &tokio::runtime::Runtime) -> anyhow::Result<Teardown> {
        on_ctrl_c(project, runtime);
        project.down()?;
        let on_drop = project.clone();
        let guard: Guard<Box<dyn FnOnce()>> = Guard::new(Box::new(move || {
            eprintln!("compose test: tearing down {PROJECT}");
            if let Err(e) = on_drop.down() {
                eprintln!("compose test: {e:#}");
            }
        }));
        Ok(Teardown {
            project: project.clone(),
            guard,
        })
    }

    /// `down -v --remove-orphans`, then a check that nothing of the project is left.
    pub fn finish(mut self) -> anyhow::Result<()> {
        self.guard.disarm();
        self.project.down()?;
        let left = self.project.containers_left()?;
        ensure!(
            left.is_empty(),
            "left behind after down: {}",
            left.join(", ")
        );
        Ok(())
    }
}

/// Ctrl-C would end this process before any drop runs: tear down from a signal task instead.
fn on_ctrl_c(project: &Project, runtime: &tokio::runtime::Runtime) {
    let project = project.clone();
    runtime.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("compose test: interrupted; tearing down {PROJECT}");
            if let Err(e) = project.down() {
                eprintln!("compose test: {e:#}");
            }
            std::process::exit(130);
        }
    });
}
