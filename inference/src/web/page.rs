//! The web page beside the gRPC services on the same port: the built front end (`inference/web`, Vite's `dist/`)
//! and the gallery's sample images. The page calls the model with gRPC-Web, which [`tonic_web`] translates in
//! this server, so the gateway routes the page and its calls like any other request on the host.

use crate::data;
use crate::model::IMAGE_SHAPE;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use bytes::Bytes;
use serde::Serialize;
use std::path::{Path, PathBuf};
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

/// Where `npm run build` in `inference/web` writes the page.
pub const DEFAULT_WEB_DIR: &str = "inference/web/dist";

/// The page's own files only; its calls go to the model's services on this origin (no CORS needed).
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; frame-ancestors 'none'";

/// Images the gallery shows, with their true labels when known: served as one JSON document
/// (`/samples.json`) of PNGs, which the page sends back to the model as `encoded_images`.
#[derive(Debug, Serialize)]
pub struct Samples {
    /// Where the images come from, shown on the page.
    pub source: String,
    pub images: Vec<Sample>,
}

#[derive(Debug, Serialize)]
pub struct Sample {
    pub name: String,
    /// 1 cat, 0 non-cat; absent for generated images.
    pub label: Option<u8>,
    /// The 64×64 image as a base64 PNG.
    pub png: String,
}

impl Samples {
    /// The catvnoncat test set from `dir` when it is there, otherwise a few images the server makes up (the
    /// container image carries no data set).
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        if !data::available(dir) {
            return Self::generated(6);
        }
        let split = data::load_split(dir, "test")?;
        let images = split
            .images
            .outer_iter()
            .zip(split.labels.iter())
            .enumerate()
            .map(|(i, (pixels, &label))| {
                Ok(Sample { name: format!("test[{i}]"), label: Some(label), png: png_base64(&pixels.to_vec())? })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { source: "the catvnoncat test set".into(), images })
    }

    pub fn generated(count: usize) -> anyhow::Result<Self> {
        let batch = crate::client::generated(count);
        let images = batch
            .names
            .iter()
            .zip(batch.pixels.chunks(crate::model::IMAGE_VALUES))
            .map(|(name, pixels)| Ok(Sample { name: name.clone(), label: None, png: png_base64(pixels)? }))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { source: "generated images (no data set configured)".into(), images })
    }
}

fn png_base64(pixels: &[u8]) -> anyhow::Result<String> {
    let image = image::RgbImage::from_raw(IMAGE_SHAPE[1] as u32, IMAGE_SHAPE[0] as u32, pixels.to_vec())
        .ok_or_else(|| anyhow::anyhow!("a sample is not 64x64x3"))?;
    let mut png = std::io::Cursor::new(Vec::new());
    image.write_to(&mut png, image::ImageFormat::Png)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(png.into_inner()))
}

/// `/`, `/assets/*` from `web_dir`, and `/samples.json`. A page that was not built answers 404 saying how to
/// build it, instead of a blank screen.
pub fn router(web_dir: &Path, samples: &Samples) -> anyhow::Result<Router> {
    let samples = Bytes::from(serde_json::to_vec(samples)?);
    let index = web_dir.join("index.html");
    let page = if index.is_file() {
        Router::new()
            .route_service("/", ServeFile::new(&index))
            .route_service("/index.html", ServeFile::new(&index))
            .nest_service("/assets", ServeDir::new(web_dir.join("assets")))
    } else {
        tracing::warn!(dir = %web_dir.display(), "the web page is not built (run `make web`); / answers 404");
        let missing = web_dir.to_path_buf();
        Router::new().route("/", get(move || not_built(missing.clone())))
    };
    Ok(page
        .route("/samples.json", get(move || json(samples.clone())))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"))))
}

async fn json(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn not_built(dir: PathBuf) -> Response {
    let message = format!("The web page is not built: {} has no index.html. Run `make web`.\n", dir.display());
    (StatusCode::NOT_FOUND, message).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_samples_are_pngs_without_labels() {
        let samples = Samples::generated(3).unwrap();
        assert_eq!(samples.images.len(), 3);
        let png = base64::engine::general_purpose::STANDARD.decode(&samples.images[0].png).unwrap();
        let pixels = crate::encoded::to_pixels(&png, "sample").unwrap();
        assert_eq!(pixels, crate::client::generated(1).pixels);
        assert!(samples.images.iter().all(|s| s.label.is_none()));
    }
}
