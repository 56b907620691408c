// The page: classify a photo, and the gallery of sample images, with gRPC-Web calls to the model server through
// the gateway on this origin. The browser sends the credentials it was asked for when it loaded the page.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { GRPCInferenceService, ModelInferRequestSchema } from "./gen/grpc_predict_v2_pb";
import { explain } from "./errors";

const MODEL = "catnet";
/// The input the server decodes and resizes itself, as it does for the `classify` command.
const ENCODED_INPUT = "encoded_images";

const client = createClient(GRPCInferenceService, createGrpcWebTransport({ baseUrl: window.location.origin }));

interface Answer {
  probability: number;
  label: string;
}

interface Samples {
  source: string;
  images: { name: string; label: number | null; png: string }[];
}

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`the page has no #${id}`);
  return found as T;
}

function showMessage(text: string | null): void {
  const message = element("message");
  message.hidden = text === null;
  message.textContent = text ?? "";
}

/// One ModelInfer call for `files` (PNG or JPEG bytes); the answers in order and the call's time.
async function classify(files: Uint8Array[]): Promise<{ answers: Answer[]; millis: number }> {
  const request = create(ModelInferRequestSchema, {
    modelName: MODEL,
    inputs: [
      {
        name: ENCODED_INPUT,
        datatype: "BYTES",
        shape: [BigInt(files.length)],
        contents: { bytesContents: files },
      },
    ],
  });
  const started = performance.now();
  const response = await client.modelInfer(request);
  const millis = performance.now() - started;
  const output = (name: string) => response.outputs.find((o) => o.name === name)?.contents;
  const probabilities = output("probabilities")?.fp32Contents ?? [];
  const labels = output("labels")?.bytesContents ?? [];
  if (probabilities.length !== files.length) {
    throw new ConnectError(`the model answered ${probabilities.length} images for ${files.length}`, Code.Internal);
  }
  const decoder = new TextDecoder();
  const answers = probabilities.map((probability, i) => ({ probability, label: decoder.decode(labels[i]) }));
  return { answers, millis };
}

async function describeModel(): Promise<void> {
  const model = element("model");
  try {
    const metadata = await client.modelMetadata({ name: MODEL });
    const inputs = metadata.inputs.map((t) => `${t.name} ${t.datatype} [${t.shape.join(", ")}]`).join(", ");
    model.textContent = `Model ${metadata.name} v${metadata.versions.join(", ")} (${metadata.platform}): ${inputs}`;
  } catch (error) {
    model.textContent = "";
    showMessage(explain(error));
  }
}

async function classifyFile(file: File): Promise<void> {
  const preview = element<HTMLImageElement>("preview");
  const answer = element("answer");
  const detail = element("detail");
  URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  element("hint").hidden = true;
  answer.textContent = "Classifying…";
  answer.removeAttribute("data-label");
  detail.textContent = "";
  showMessage(null);
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    const { answers, millis } = await classify([bytes]);
    const [{ label, probability }] = answers;
    answer.textContent = label;
    answer.dataset.label = label;
    answer.dataset.probability = String(probability);
    detail.textContent = `P(cat) = ${probability.toFixed(4)} · ${millis.toFixed(0)} ms · ${file.name}`;
  } catch (error) {
    answer.textContent = "";
    showMessage(explain(error));
  }
}

function bytesOf(base64: string): Uint8Array {
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

async function showGallery(): Promise<void> {
  const summary = element("gallery-summary");
  const response = await fetch("/samples.json");
  if (!response.ok) {
    summary.textContent = `(the samples did not load: HTTP ${response.status})`;
    return;
  }
  const samples = (await response.json()) as Samples;
  element("gallery-source").textContent = `From ${samples.source}.`;
  const gallery = element("gallery");
  const tiles = samples.images.map((sample) => {
    const tile = document.createElement("li");
    const image = document.createElement("img");
    image.src = `data:image/png;base64,${sample.png}`;
    image.alt = sample.name;
    const caption = document.createElement("span");
    caption.textContent = "…";
    tile.append(image, caption);
    gallery.append(tile);
    return { tile, caption, sample };
  });
  try {
    const { answers, millis } = await classify(samples.images.map((s) => bytesOf(s.png)));
    let right = 0;
    let known = 0;
    answers.forEach(({ label, probability }, i) => {
      const { tile, caption, sample } = tiles[i];
      tile.dataset.label = label;
      tile.dataset.probability = String(probability);
      caption.textContent = `${label} ${probability.toFixed(2)}`;
      if (sample.label !== null) {
        known += 1;
        const correct = (probability > 0.5) === (sample.label === 1);
        right += correct ? 1 : 0;
        tile.classList.toggle("wrong", !correct);
        if (!correct) caption.textContent += ` (is ${sample.label === 1 ? "cat" : "non-cat"})`;
      }
    });
    const accuracy = known > 0 ? ` right, accuracy ${(right / known).toFixed(2)}` : "";
    summary.dataset.right = String(right);
    summary.dataset.known = String(known);
    summary.textContent = `${known > 0 ? `${right}/${known}` : `${answers.length} images`}${accuracy} · one call, ${millis.toFixed(0)} ms`;
  } catch (error) {
    summary.textContent = "";
    showMessage(explain(error));
  }
}

function wireDrop(): void {
  const drop = element("drop");
  const input = element<HTMLInputElement>("file");
  input.addEventListener("change", () => {
    const file = input.files?.[0];
    if (file) void classifyFile(file);
  });
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const file = event.dataTransfer?.files[0];
    if (file) void classifyFile(file);
  });
}

wireDrop();
void describeModel();
void showGallery();
