import type { Metadata } from "next";
import { ModelsHome } from "@/components/models/models-home";

export const metadata: Metadata = { title: "Models" };

/** The models on the server: upload one (resumable), register one by URL, see which devices run each, delete. */
export default function ModelsPage() {
  return <ModelsHome />;
}
