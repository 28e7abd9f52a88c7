import type { Metadata } from "next";
import { BenchHome } from "@/components/bench/bench-home";

export const metadata: Metadata = { title: "Benchmarks" };

/** The runs; /benchmarks?device=ID (repeatable) opens "Run benchmark" with those devices chosen. */
export default async function BenchmarksPage({ searchParams }: { searchParams: Promise<{ device?: string | string[] }> }) {
  const { device } = await searchParams;
  const preselect = device === undefined ? [] : Array.isArray(device) ? device : [device];
  return <BenchHome preselect={preselect} />;
}
