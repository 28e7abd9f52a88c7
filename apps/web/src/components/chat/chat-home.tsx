"use client";
/** /chat beside the list (wide screens only; a phone shows the list itself): start a conversation by choosing a device. */
import { MessagesSquare } from "lucide-react";
import { useRouter } from "next/navigation";
import { Card } from "@/components/ui/card";
import { newChatHref } from "@/lib/chat-device";
import { DevicePicker } from "./device-picker";

export function ChatHome() {
  const router = useRouter();
  return (
    <Card className="flex min-h-0 flex-1 flex-col overflow-y-auto">
      <div className="mx-auto flex w-full max-w-lg flex-col gap-4 px-5 py-10">
        <div className="flex flex-col items-center gap-3 text-center">
          <span className="flex size-12 items-center justify-center rounded-full bg-muted">
            <MessagesSquare className="size-6 text-muted-foreground" aria-hidden />
          </span>
          <h2 className="text-base font-semibold">Chat with the model on a Pi</h2>
          <p className="text-sm text-muted-foreground">
            Open a conversation from the list, or start a new one on a device. Conversations are kept; each answer shows how fast the device
            produced it.
          </p>
        </div>
        <DevicePicker onPick={(id) => router.push(newChatHref(id))} />
      </div>
    </Card>
  );
}
