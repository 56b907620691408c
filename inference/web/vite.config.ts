import { defineConfig } from "vite";

// `npm run dev` serves the page from Vite and sends its gRPC-Web calls to a model server on :8500.
const grpc = { target: "http://127.0.0.1:8500", changeOrigin: false };

export default defineConfig({
  build: { outDir: "dist", emptyOutDir: true, assetsDir: "assets" },
  server: {
    proxy: {
      "/inference.GRPCInferenceService": grpc,
      "/samples.json": grpc,
    },
  },
});
