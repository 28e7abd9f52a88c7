import type { Metadata } from "next";
import { redirect } from "next/navigation";
import { ChatHome } from "@/components/chat/chat-home";
import { newChatHref } from "@/lib/chat-device";

export const metadata: Metadata = { title: "Chat" };

/** The conversations; /chat?device=ID is a synonym of /chat/new?device=ID. */
export default async function ChatPage({ searchParams }: { searchParams: Promise<{ device?: string | string[] }> }) {
  const { device } = await searchParams;
  const deviceId = Array.isArray(device) ? device[0] : device;
  if (deviceId) redirect(newChatHref(deviceId));
  return <ChatHome />;
}
