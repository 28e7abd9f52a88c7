/** Tailwind 4 through PostCSS: the only CSS tooling the dashboard uses. */
const config = {
  plugins: { "@tailwindcss/postcss": {} },
};

export default config;
