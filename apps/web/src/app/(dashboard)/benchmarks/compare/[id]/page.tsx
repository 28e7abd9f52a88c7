import type { Metadata } from "next";
import { RuntimeComparisonView } from "@/components/bench/runtime-comparison-view";

export const metadata: Metadata = { title: "Runtime comparison" };

export default async function RuntimeComparisonPage({ params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  const comparisonId = decodeURIComponent(id);
  return <RuntimeComparisonView key={comparisonId} id={comparisonId} />;
}
