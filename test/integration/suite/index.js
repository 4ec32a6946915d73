// Mocha entry that runs inside the VS Code extension host (code-server here,
// @vscode/test-electron on a machine that can download VS Code).
'use strict';
const path = require('node:path');
const mochaModule = require('mocha');
// mocha 10/11 export the constructor; 12 exports a namespace.
const Mocha = typeof mochaModule === 'function' ? mochaModule : mochaModule.Mocha ?? mochaModule.default;

exports.run = function run() {
  const mocha = new Mocha({ ui: 'bdd', timeout: 240_000, color: false, reporter: 'spec' });
  mocha.addFile(path.join(__dirname, 'extension.test.js'));
  return new Promise((resolve, reject) => {
    mocha.run((failures) => (failures ? reject(new Error(`${failures} integration test(s) failed`)) : resolve()));
  });
};
