import type { Metadata } from "next";
import { RolloutsHome } from "@/components/rollouts/rollouts-home";

export const metadata: Metadata = { title: "Rollouts" };

/** The rollouts; /rollouts?artifact=ID and/or ?device=ID (repeatable) open "New rollout" with those chosen. */
export default async function RolloutsPage({ searchParams }: { searchParams: Promise<{ artifact?: string; device?: string | string[] }> }) {
  const { artifact, device } = await searchParams;
  const deviceIds = device === undefined ? [] : Array.isArray(device) ? device : [device];
  return <RolloutsHome preselect={{ artifactId: artifact ?? null, deviceIds }} />;
}
