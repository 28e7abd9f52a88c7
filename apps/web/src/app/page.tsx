export default function Home() {
  return <main>Orchard</main>;
}
