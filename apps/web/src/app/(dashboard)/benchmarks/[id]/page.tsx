import type { Metadata } from "next";
import { BenchRunView } from "@/components/bench/bench-run-view";

export const metadata: Metadata = { title: "Benchmark" };

export default async function BenchmarkRunPage({ params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  const runId = decodeURIComponent(id);
  return <BenchRunView key={runId} id={runId} />;
}
