import type { Metadata } from "next";
import { RolloutView } from "@/components/rollouts/rollout-view";

export const metadata: Metadata = { title: "Rollout" };

export default async function RolloutPage({ params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  const rolloutId = decodeURIComponent(id);
  return <RolloutView key={rolloutId} id={rolloutId} />;
}
