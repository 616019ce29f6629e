//! `/v1/quarantines`.

use reqwest::Method;

use crate::*;

impl Client {
    /// `GET /v1/quarantines` (`all`: expired entries too).
    pub async fn list_quarantines(
        &self,
        all: bool,
    ) -> Result<Vec<assay_api::quarantine::QuarantineEntry>, ClientError> {
        let mut url = self.url(&["v1", "quarantines"]);
        if all {
            url.query_pairs_mut().append_pair("all", "true");
        }
        self.json(self.request(Method::GET, url)).await
    }

    /// `POST /v1/quarantines`: quarantine a test (admin).
    pub async fn add_quarantine(
        &self,
        request: &assay_api::quarantine::QuarantineRequest,
    ) -> Result<assay_api::quarantine::QuarantineEntry, ClientError> {
        let url = self.url(&["v1", "quarantines"]);
        self.json(self.request(Method::POST, url).json(request))
            .await
    }

    /// `DELETE /v1/quarantines/{test}?workflow=W`: lift a quarantine (admin).
    pub async fn remove_quarantine(
        &self,
        test: &str,
        workflow: Option<&str>,
    ) -> Result<(), ClientError> {
        let mut url = self.url(&["v1", "quarantines", test]);
        if let Some(w) = workflow {
            url.query_pairs_mut().append_pair("workflow", w);
        }
        self.send(self.request(Method::DELETE, url)).await?;
        Ok(())
    }
}
